package procstat

import (
	"sync"
	"time"

	"github.com/corral-run/corral/client/wire"
)

// Root names the process whose tree is to be measured.
type Root struct {
	PID int
	// StartTime, when not 0, is the value StartTime returned for PID when
	// the process was started: a process with the same pid but another start
	// time is a recycled pid and yields no result.
	StartTime uint64
}

// TreeStats is one root's tree at one Sample.
type TreeStats struct {
	// PIDs are the pids in the tree, the root first.
	PIDs []int
	// RSS is the resident set in bytes, summed over the tree.
	RSS uint64
	// UserMicros and SystemMicros are the CPU time the tree used since the
	// previous Sample of this root, in microseconds; on the first Sample
	// (or after Forget), since the root started.
	UserMicros, SystemMicros float64
	// CPUPercent is (user+system) over the wall time of the same interval,
	// times 100: the share of one core, so it can exceed 100 on a
	// multi-core host. On the first Sample it is over the root's lifetime.
	CPUPercent float64
	// Uptime is the number of seconds since the root started.
	Uptime float64
}

// Stats returns t in the spec's ProcessStats shape. The heap figures are 0:
// the node cannot see inside a child's runtime.
func (t TreeStats) Stats() wire.Stats {
	return wire.Stats{
		CPU:    wire.CPUStats{User: t.UserMicros, System: t.SystemMicros, Percent: t.CPUPercent},
		Memory: wire.MemoryStats{RSS: float64(t.RSS)},
		Uptime: t.Uptime,
	}
}

// Sampler measures process trees and keeps, per root, the CPU totals of its
// previous Sample so it can report deltas and a percentage.
//
// A Sampler is safe for concurrent use, but it is meant to be called from
// one sampling goroutine: Sample calls are serialised, and one call over
// many roots is much cheaper than many calls over one root each. The zero
// value is ready to use.
type Sampler struct {
	mu   sync.Mutex
	prev map[int]previous
	sc   scanner // OS-specific, reuses its buffers between calls
}

// previous is what a root looked like at its last Sample.
type previous struct {
	start        uint64  // to notice a recycled pid that was never forgotten
	user, system float64 // cumulative tree CPU, microseconds
	at           time.Time
}

// measured is a tree as the scanner saw it: cumulative CPU, not deltas.
type measured struct {
	pid          int
	start        uint64
	pids         []int
	rss          uint64
	user, system float64 // cumulative, microseconds
	uptime       float64 // seconds
}

// NewSampler returns an empty Sampler.
func NewSampler() *Sampler {
	return &Sampler{prev: make(map[int]previous)}
}

// Sample measures the trees of all roots in one pass and returns one result
// per root pid that still exists (and, where Root.StartTime is set, still is
// the same process). Roots with a pid <= 0 are ignored. The state of a
// requested root that no longer exists is forgotten; roots not requested
// keep theirs, so callers may sample different subsets on different
// schedules.
func (s *Sampler) Sample(roots []Root) map[int]TreeStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.prev == nil {
		s.prev = make(map[int]previous)
	}
	now := time.Now()
	out := make(map[int]TreeStats, len(roots))
	s.sc.scan(roots, func(m measured) {
		t := TreeStats{PIDs: m.pids, RSS: m.rss, Uptime: m.uptime}
		user, system, wall := m.user, m.system, m.uptime
		if p, ok := s.prev[m.pid]; ok && p.start == m.start {
			// A member that left the tree takes its time with it: never
			// report negative use.
			user, system = max(m.user-p.user, 0), max(m.system-p.system, 0)
			wall = now.Sub(p.at).Seconds()
		}
		t.UserMicros, t.SystemMicros = user, system
		if wall > 0 {
			t.CPUPercent = (user + system) / 1e6 / wall * 100
		}
		s.prev[m.pid] = previous{start: m.start, user: m.user, system: m.system, at: now}
		out[m.pid] = t
	})
	for _, r := range roots {
		if _, ok := out[r.PID]; !ok {
			delete(s.prev, r.PID)
		}
	}
	return out
}

// Forget drops the state kept for a root that ended, so a later Sample of
// the same pid starts afresh.
func (s *Sampler) Forget(pid int) {
	s.mu.Lock()
	delete(s.prev, pid)
	s.mu.Unlock()
}

// Tree returns the pids of root's tree (as Sample counts it, the root
// first), or nil when root no longer exists. It scans /proc once: meant
// for rare questions (who may connect), not for a loop.
func Tree(root Root) []int {
	var sc scanner
	var pids []int
	sc.scan([]Root{root}, func(m measured) { pids = m.pids })
	return pids
}
