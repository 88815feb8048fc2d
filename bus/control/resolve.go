package control

import (
	"context"
	"fmt"
	"strings"

	"github.com/corral-run/corral/api"
)

// Resolve finds the process that ref names, for people: a process id,
// any unique prefix of one (with or without "proc_"), or an instance name
// (encoder/0). A full id is taken as it is, without asking anyone.
// Otherwise the processes of every node are listed, finished ones too: a
// ref that several match is an ErrBadRequest error listing them (running
// processes are preferred over finished ones), one that none matches an
// ErrNotFound error.
func (c *Control) Resolve(ctx context.Context, ref string) (string, error) {
	if api.IsID(ref) {
		return ref, nil
	}
	if ref == "" {
		return "", api.Errorf(ErrBadRequest, "no process named: give an id, a prefix of one, or an instance name")
	}
	res, err := c.List(ctx, api.ListRequest{All: true})
	if err != nil {
		return "", err
	}
	return pick(ref, res.Processes)
}

// pick chooses the process ref names among ps.
func pick(ref string, ps []api.ManagedProcess) (string, error) {
	var byInstance, running, all []api.ManagedProcess
	for _, p := range ps {
		switch {
		case p.Instance == ref:
			byInstance = append(byInstance, p)
		case strings.HasPrefix(p.ID, ref) || strings.HasPrefix(strings.TrimPrefix(p.ID, api.IDPrefix), ref):
			all = append(all, p)
			if !p.Status.Finished() {
				running = append(running, p)
			}
		}
	}
	for _, set := range [][]api.ManagedProcess{byInstance, running, all} {
		switch {
		case len(set) == 1:
			return set[0].ID, nil
		case len(set) > 1:
			names := make([]string, 0, len(set))
			for _, p := range set {
				names = append(names, fmt.Sprintf("%s (%s on %s, %s)", p.ID, p.Name, p.Node, p.Status))
			}
			return "", api.Errorf(ErrBadRequest, "%q matches %d processes: %s; give more of the id", ref, len(set), strings.Join(names, ", "))
		}
	}
	return "", api.Errorf(ErrNotFound, "no such process: nothing matches %q (an id, a prefix of one, or an instance name such as encoder/0)", ref)
}
