package node

import (
	"slices"

	"github.com/corral-run/corral/api"
)

// A node's definitions come from three places: its configuration file
// (Define, at start and at reload), define requests (DefineRemote), and
// the cluster's desired state (Apply: `corralctl apply`). The file wins:
// a define request for one of its names is refused, an applied definition
// of the same name waits behind it (Shadowed) and takes effect if the file
// drops it. Running processes always keep the definition they started
// with.

// DefineRemote adds or replaces a definition sent over the control plane.
// It may not replace one the node was configured with (Define): that is
// an ErrConflict error.
func (s *Supervisor) DefineRemote(d Definition) error {
	cd, err := s.compile(d)
	if err != nil {
		return err
	}
	cd.remote = true
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if cur := s.defs[d.Name]; cur != nil && !cur.remote {
		return api.Errorf(ErrConflict, "cannot define %q: the node's configuration defines it, and a remote definition may not replace it", d.Name)
	}
	s.defs[d.Name] = cd
	return nil
}

// Apply adds or replaces a definition applied from the cluster's desired
// state. When the node's configuration defines the name, the applied one
// is kept aside and shadowed is true.
func (s *Supervisor) Apply(d Definition) (shadowed bool, err error) {
	cd, err := s.compile(d)
	if err != nil {
		return false, err
	}
	cd.remote = true
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false, ErrClosed
	}
	s.applied[d.Name] = cd
	if cur := s.defs[d.Name]; cur != nil && !cur.remote {
		return true, nil
	}
	s.defs[d.Name] = cd
	return false, nil
}

// Unapply removes an applied definition (and reports whether there was
// one); a define request's of the same name stays.
func (s *Supervisor) Unapply(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	cd := s.applied[name]
	if cd == nil {
		return false
	}
	delete(s.applied, name)
	if s.defs[name] == cd {
		delete(s.defs, name)
	}
	return true
}

// Shadowed lists, sorted, the applied definitions the node's
// configuration overrides.
func (s *Supervisor) Shadowed() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []string
	for name, cd := range s.applied {
		if s.defs[name] != cd {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// Undefine removes the definition name, whether configured or remote; an
// applied one of the name, if any, takes its place. Running processes
// keep the definition they were spawned with (and restart with it);
// instances of it are stopped by the next EnsureInstances.
func (s *Supervisor) Undefine(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.defs[name] == nil {
		return api.Errorf(ErrNotFound, "cannot remove definition %q: there is none", name)
	}
	delete(s.defs, name)
	if cd := s.applied[name]; cd != nil {
		s.defs[name] = cd
	}
	return nil
}
