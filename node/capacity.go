package node

import (
	"syscall"

	"github.com/corral-run/corral/api"
)

// How many processes a node runs at most: every child costs the node file
// descriptors (its socket, its exit watch, its output), and a node out of
// them can no longer accept anyone, operators included. Beyond its
// capacity a spawn is refused (503) with the limit named, and the control
// service hands a queued spawn to another node that has room.

// Capacity figures.
const (
	// FDsPerProcess is what a running child costs the node, at most.
	FDsPerProcess = 3
	// FDReserve is what the node keeps for itself: NATS clients of the
	// embedded server, JetStream files, logs, the state directory.
	FDReserve = 1024
)

// DefaultMaxProcesses is Config.MaxProcesses when it is zero: what the
// open-file limit leaves after FDReserve, at FDsPerProcess each, and at
// least 1. (Go raises the soft limit to the hard one at start.)
func DefaultMaxProcesses() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 1000
	}
	n := (int64(rl.Cur) - FDReserve) / FDsPerProcess
	return int(max(n, 1))
}

// checkCapacity says which limit, if any, refuses one more process of d.
// Spawns hold s.spawnMu from this check until the process is registered,
// so that a burst cannot overshoot.
func (s *Supervisor) checkCapacity(d *definition) error {
	if live := s.running(); live >= s.cfg.MaxProcesses {
		return api.Errorf(api.ErrNoCapacity, "cannot spawn %q: node %s runs %d processes, its limit (node.max_processes)", d.Name, s.cfg.NodeID, live)
	}
	if d.MaxInstances > 0 {
		if ofDef := s.runningOf(d.Name); ofDef >= d.MaxInstances {
			return api.Errorf(api.ErrNoCapacity, "cannot spawn %q: node %s runs %d of it, the definition's limit (max_instances)", d.Name, s.cfg.NodeID, ofDef)
		}
	}
	return nil
}

// running counts the processes whose child runs: those that may connect
// (s.live), registered as their child starts (or is re-adopted) and
// dropped once it is reaped, a moment before the process is marked ended.
// It costs nothing per process, where walking every process cost a spawn
// among thousands a walk of them all.
func (s *Supervisor) running() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.live)
}

// runningOf counts the processes of one definition that have not finished.
func (s *Supervisor) runningOf(name string) int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := 0
	for _, p := range s.procs {
		if !p.finished() && p.def.Name == name {
			n++
		}
	}
	return n
}

// Room reports whether the node could spawn one more of name now (it
// defines it, and neither its capacity nor the definition's is reached).
func (s *Supervisor) Room(name string) bool {
	s.mu.RLock()
	d := s.defs[name]
	s.mu.RUnlock()
	return d != nil && s.checkCapacity(d) == nil
}
