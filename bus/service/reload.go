package service

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/micro"

	"github.com/corral-run/corral/api"
)

// handleReload answers corral.reload and corral.node.<id>.reload: the node
// reads its configuration file again (daemon.Reload).
func (s *Service) handleReload(r micro.Request) {
	if err := decodeRequest("cannot reload", r.Data(), &struct{}{}); err != nil {
		respondError(r, err)
		return
	}
	if s.cfg.Reload == nil {
		respondError(r, api.Errorf(api.ErrNotFound, "cannot reload node %s: it has no configuration to reload", s.cfg.NodeID))
		return
	}
	s.async(r, fmt.Sprintf("cannot reload node %s", s.cfg.NodeID), func(_ context.Context, r replier) {
		reply, err := s.cfg.Reload()
		respond(r, reply, err)
	})
}

// DefinitionsChanged is called after the supervisor's definitions
// changed (a reload, an applied definition): the node joins the spawn
// queue group of each new name, and announces its new list.
func (s *Service) DefinitionsChanged() {
	sup := s.supervisor()
	if sup == nil {
		return
	}
	for _, d := range sup.Definitions() {
		if err := s.serveSpawn(d.Name); err != nil {
			s.log.Error("cannot serve spawns of a new definition", "name", d.Name, "err", err)
		}
	}
	s.presence.ProcessesChanged()
}
