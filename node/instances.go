package node

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/corral-run/corral/api"
)

// Instances: a definition with Instances = N is kept running N times on
// the node, as <name>/0 … <name>/N-1; a cluster service's instances
// (<service>/<k>) are spawned here by the reconciler with the same
// machinery. An instance is one slot, never two processes at once:
//
//   - it restarts on every exit, clean or not, with the definition's
//     backoff, and keeps its instance name through restarts;
//   - when its restart limit is reached it is held: the node stops
//     replacing it (and the cluster does not place it elsewhere) until
//     Restart of it; a node-local instance stopped by an operator is held
//     too (as systemctl stop), a service's is not (the reconciler owns
//     it: scale or delete the service to stop it);
//   - EnsureInstances starts every slot that has no process and is not
//     held, and stops the slots beyond N: after Recover, after a
//     definition changes, and when a hold is released.
//
// A node that restarts starts over: nothing is held.

// MaxDefinitionInstances bounds Definition.Instances.
const MaxDefinitionInstances = 10000

// InstanceName is <name>/<k>.
func InstanceName(name string, k int) string { return name + "/" + strconv.Itoa(k) }

// ParseInstance splits <name>/<k>, and says what is wrong with one that is
// not an instance name.
func ParseInstance(inst string) (name string, k int, err error) {
	name, num, ok := strings.Cut(inst, "/")
	if !ok {
		return "", 0, api.Errorf(ErrInvalid, "instance %q is not <name>/<number>", inst)
	}
	if err := ValidName(name); err != nil {
		return "", 0, api.Errorf(ErrInvalid, "instance %q: %w", inst, err)
	}
	k, err = strconv.Atoi(num)
	if err != nil || k < 0 || k >= MaxDefinitionInstances || strconv.Itoa(k) != num {
		return "", 0, api.Errorf(ErrInvalid, "instance %q: %q is not a number from 0 to %d", inst, num, MaxDefinitionInstances-1)
	}
	return name, k, nil
}

// validInstanceOptions checks a spawn's Instance and Service.
func validInstanceOptions(opts SpawnOptions) error {
	if opts.Service != "" {
		if err := ValidName(opts.Service); err != nil {
			return api.Errorf(ErrInvalid, "service: %w", err)
		}
		if opts.Instance == "" {
			return api.Errorf(ErrInvalid, "a service's process needs an instance name (<service>/<k>)")
		}
	}
	if opts.Instance == "" {
		return nil
	}
	name, _, err := ParseInstance(opts.Instance)
	if err != nil {
		return err
	}
	if opts.Service != "" && name != opts.Service {
		return api.Errorf(ErrInvalid, "instance %q is not one of service %q", opts.Instance, opts.Service)
	}
	return nil
}

// occupies reports whether p holds its instance slot: it runs, is being
// stopped, or waits out a restart backoff.
func (p *process) occupies() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch p.st.phase {
	case running, stopping, backoff:
		return true
	}
	return false
}

// occupant is the process that holds instance inst, or nil. Callers that
// start one hold s.spawnMu.
func (s *Supervisor) occupant(inst string) *process {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, p := range s.procs {
		if p.opts.Instance == inst && p.occupies() {
			return p
		}
	}
	return nil
}

// checkInstanceFree refuses a second process for an instance.
func (s *Supervisor) checkInstanceFree(opts SpawnOptions) error {
	if opts.Instance == "" {
		return nil
	}
	if p := s.occupant(opts.Instance); p != nil {
		return api.Errorf(ErrConflict, "cannot start instance %s: it runs already as %s on node %s", opts.Instance, p.id, s.cfg.NodeID)
	}
	return nil
}

// hold marks p's instance as not to be replaced (restart limit reached, or
// a node-local instance stopped by an operator).
func (s *Supervisor) hold(p *process) {
	if p.opts.Instance == "" {
		return
	}
	s.mu.Lock()
	s.held[p.opts.Instance] = hold{id: p.id, service: p.opts.Service != ""}
	s.mu.Unlock()
	p.mu.Lock()
	p.held = true
	p.mu.Unlock()
}

// holdOnStop holds p when an operator stops a node-local instance.
func (s *Supervisor) holdOnStop(p *process) {
	if p.opts.Instance != "" && p.opts.Service == "" {
		s.hold(p)
	}
}

// release lets the node replace p's instance again (Restart of it).
func (s *Supervisor) release(p *process) {
	if p.opts.Instance == "" {
		return
	}
	s.mu.Lock()
	var old *process
	if h, ok := s.held[p.opts.Instance]; ok {
		old = s.procs[h.id]
		delete(s.held, p.opts.Instance)
	}
	s.mu.Unlock()
	if old != nil {
		old.mu.Lock()
		old.held = false
		old.mu.Unlock()
	}
}

func (s *Supervisor) isHeld(inst string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.held[inst]
	return ok
}

// hold is a held instance: the process that ended it, and whether it is
// a service's (the reconciler's, left alone by EnsureInstances).
type hold struct {
	id      string
	service bool
}

// EnsureInstances brings every definition's instances to its count: each
// slot that has no process and is not held is started, each process of a
// slot beyond the count (or of a removed definition) is stopped, in the
// background. It returns what it started; an instance that cannot start
// is logged and reported in the error.
func (s *Supervisor) EnsureInstances() ([]api.ManagedProcess, error) {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return nil, ErrClosed
	}
	want := map[string]*definition{}
	for _, d := range s.defs {
		for k := range d.Instances {
			want[InstanceName(d.Name, k)] = d
		}
	}
	var surplus []*process
	for _, p := range s.procs {
		if p.opts.Instance != "" && p.opts.Service == "" && want[p.opts.Instance] == nil && p.occupies() {
			surplus = append(surplus, p)
		}
	}
	s.mu.RUnlock()
	s.mu.Lock()
	for inst, h := range s.held { // a slot no longer wanted starts afresh if it comes back
		if !h.service && want[inst] == nil {
			delete(s.held, inst)
		}
	}
	s.mu.Unlock()
	for _, p := range surplus {
		s.log.Info("stopping an instance beyond its definition's count", "process", p.id, "instance", p.opts.Instance)
		s.wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), p.def.StopTimeout+10*time.Second)
			defer cancel()
			if err := p.stop(ctx, 0); err != nil && !errors.Is(err, ErrNotRunning) { // not s.Stop: that would hold it
				s.log.Error("cannot stop a surplus instance", "process", p.id, "instance", p.opts.Instance, "err", err)
			}
		})
	}
	var started []api.ManagedProcess
	var errs []error
	for _, inst := range sortedNames(want) {
		mp, err := s.ensureInstance(want[inst], inst)
		switch {
		case err != nil:
			s.log.Error("cannot start instance", "instance", inst, "err", err)
			errs = append(errs, err)
		case mp != nil:
			started = append(started, *mp)
		}
	}
	if len(errs) > 0 {
		s.retryInstances()
		return started, fmt.Errorf("%d of the instances could not start, first: %w", len(errs), errs[0])
	}
	return started, nil
}

// instanceRetry is how long after a failed start EnsureInstances tries
// again (a full node, a command not yet installed).
const instanceRetry = 5 * time.Second

// retryInstances arms one retry of EnsureInstances, unless one is armed.
func (s *Supervisor) retryInstances() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.ensureRetry != nil {
		return
	}
	s.ensureRetry = time.AfterFunc(instanceRetry, func() {
		s.mu.Lock()
		s.ensureRetry = nil
		s.mu.Unlock()
		_, _ = s.EnsureInstances()
	})
}

// ensureInstance starts inst unless it has a process or is held.
func (s *Supervisor) ensureInstance(d *definition, inst string) (*api.ManagedProcess, error) {
	s.spawnMu.Lock()
	defer s.spawnMu.Unlock()
	if s.occupant(inst) != nil || s.isHeld(inst) {
		return nil, nil
	}
	if err := s.checkCapacity(d); err != nil {
		return nil, err
	}
	p, err := s.start(d, SpawnOptions{Instance: inst}, lineage{})
	if err != nil {
		return nil, err
	}
	mp := p.snapshot()
	return &mp, nil
}
