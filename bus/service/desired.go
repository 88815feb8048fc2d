package service

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/micro"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus"
	"github.com/corral-run/corral/bus/desired"
)

// serveDesired starts the node's part in the desired state (package
// bus/desired) and answers corral.desired.* in the queue group "desired".
// Without a registry (no JetStream in use) there is no desired state.
func (s *Service) serveDesired(svc micro.Service, sup Supervisor) error {
	if s.cfg.Registry == nil {
		return nil
	}
	cfg := desired.Config{NodeID: s.cfg.NodeID, Labels: s.cfg.Labels, Interval: s.cfg.HeartbeatInterval,
		Control: s.control, Logger: s.log, Changed: s.DefinitionsChanged,
		Alive: s.presence.Alive, Isolated: s.presence.Isolated}
	if s.cfg.RemoteDefinitions {
		cfg.Definer = sup
	}
	cfg.Ready = func() {
		if err := s.addDesiredEndpoints(svc); err != nil {
			s.log.Error("cannot answer requests for the desired state", "err", err)
		}
	}
	s.desired = desired.New(s.nc, cfg)
	s.desired.Start()
	return nil
}

// addDesiredEndpoints answers corral.desired.*, once the desired state
// can be read.
func (s *Service) addDesiredEndpoints(svc micro.Service) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	for _, e := range []struct {
		verb string
		h    func(micro.Request)
	}{
		{bus.DesiredGet, s.handleDesiredGet}, {bus.DesiredApply, s.handleApply},
		{bus.DesiredScale, s.handleScale}, {bus.DesiredDelete, s.handleDelete},
	} {
		if err := svc.AddEndpoint("desired-"+e.verb, micro.HandlerFunc(e.h),
			micro.WithEndpointSubject(bus.DesiredSubject(e.verb)), micro.WithEndpointQueueGroup("desired")); err != nil {
			return fmt.Errorf("cannot add endpoint %s: %w", bus.DesiredSubject(e.verb), err)
		}
	}
	return nil
}

func (s *Service) handleDesiredGet(r micro.Request) {
	if err := decodeRequest("cannot read the desired state", r.Data(), &struct{}{}); err != nil {
		respondError(r, err)
		return
	}
	s.async(r, "cannot read the desired state", func(ctx context.Context, r replier) {
		st, err := s.desired.Get(ctx)
		respond(r, st, err)
	})
}

func (s *Service) handleApply(r micro.Request) {
	var req api.ApplyRequest
	if err := decodeRequest("cannot apply", r.Data(), &req); err != nil {
		respondError(r, err)
		return
	}
	s.async(r, "cannot apply", func(ctx context.Context, r replier) {
		reply, err := s.desired.Apply(ctx, []byte(req.TOML))
		respond(r, reply, err)
	})
}

func (s *Service) handleScale(r micro.Request) {
	var req api.ScaleRequest
	if err := decodeRequest("cannot scale", r.Data(), &req); err != nil {
		respondError(r, err)
		return
	}
	s.async(r, fmt.Sprintf("cannot scale %q", req.Service), func(ctx context.Context, r replier) {
		spec, err := s.desired.Scale(ctx, req)
		respond(r, spec, err)
	})
}

func (s *Service) handleDelete(r micro.Request) {
	var req api.DeleteRequest
	if err := decodeRequest("cannot delete", r.Data(), &req); err != nil {
		respondError(r, err)
		return
	}
	s.async(r, fmt.Sprintf("cannot delete %s %q", req.Kind, req.Name), func(ctx context.Context, r replier) {
		respond(r, api.OK{OK: true}, s.desired.Delete(ctx, req))
	})
}
