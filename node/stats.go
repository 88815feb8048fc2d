package node

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/node/procstat"
)

// sampler measures every running child's process tree on its definition's
// stats interval, from one goroutine and one /proc scan per round: it
// publishes the figures (source "node") and enforces the memory and CPU
// limits, so they hold whether or not the child sends stats itself.
type sampler struct {
	s    *Supervisor
	ps   *procstat.Sampler
	wake chan struct{} // a new process may be due sooner
	// next is when the next round is due (UnixNano); 0 while a round
	// runs, when a process registered meanwhile may not have been seen.
	next atomic.Int64
}

func newSampler(s *Supervisor) *sampler {
	return &sampler{s: s, ps: procstat.NewSampler(), wake: make(chan struct{}, 1)}
}

// poke makes the loop recompute when it is next due.
func (sm *sampler) poke() {
	select {
	case sm.wake <- struct{}{}:
	default:
	}
}

// dueBy says that a process just registered is first due at t: the loop
// recomputes only when that is before the round already due (or a round
// runs, which may not have seen it). A round walks every process, and the
// processes of one stats interval share their ticks (nextTick), so a
// spawn among a thousand processes costs no round.
func (sm *sampler) dueBy(t time.Time) {
	if next := sm.next.Load(); next == 0 || t.UnixNano() < next {
		sm.poke()
	}
}

// forget drops the sampler's state for a root that ended.
func (sm *sampler) forget(pid int) { sm.ps.Forget(pid) }

// pruneEvery is how often the loop also forgets expired records.
const pruneEvery = time.Minute

// run is the sampling loop; it returns when ctx ends.
func (sm *sampler) run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	lastPrune := time.Now()
	for {
		now := time.Now()
		sm.next.Store(0)
		next := sm.round(now)
		sm.next.Store(next.UnixNano())
		if now.Sub(lastPrune) > pruneEvery {
			sm.s.prune()
			lastPrune = now
		}
		timer.Reset(time.Until(next))
		select {
		case <-ctx.Done():
			return
		case <-sm.wake:
		case <-timer.C:
		}
	}
}

// round samples the processes that are due and returns when the next one
// will be.
func (sm *sampler) round(now time.Time) time.Time {
	s := sm.s
	next := now.Add(time.Minute)
	var due []*process
	s.mu.RLock()
	for _, p := range s.procs {
		p.mu.Lock()
		if p.st.live() {
			if !p.nextSample.After(now) {
				due = append(due, p)
				p.nextSample = nextTick(now, p.def.StatsInterval)
			}
			if p.nextSample.Before(next) {
				next = p.nextSample
			}
		}
		p.mu.Unlock()
	}
	s.mu.RUnlock()
	if len(due) == 0 {
		return next
	}
	roots := make([]procstat.Root, len(due))
	for i, p := range due {
		roots[i] = procstat.Root{PID: p.pid, StartTime: p.startTicks}
	}
	results := sm.ps.Sample(roots)
	for _, p := range due {
		if tree, ok := results[p.pid]; ok {
			sm.observe(p, tree)
		}
	}
	return next
}

// nextTick is the first multiple of interval after now. Sampling on a grid
// puts every process of the same interval into one round (one /proc scan)
// instead of one round per process.
func nextTick(now time.Time, interval time.Duration) time.Time {
	return now.Truncate(interval).Add(interval)
}

// observe records, publishes and checks one process's sample.
func (sm *sampler) observe(p *process, tree procstat.TreeStats) {
	s, def := sm.s, p.def
	stats := tree.Stats()
	memMB := float64(tree.RSS) / 1e6
	cpuBreach := false
	p.mu.Lock()
	p.lastStats = &stats
	if lim := def.Limits.MaxCPUPercent; lim > 0 && tree.CPUPercent > lim {
		p.cpuOver++
		cpuBreach = p.cpuOver >= 2 // two samples in a row: a start-up burst is forgiven
	} else {
		p.cpuOver = 0
	}
	p.mu.Unlock()
	s.report(Report{Kind: KindStats, ProcessID: p.id, Name: def.Name,
		Payload: api.StatsReport{ProcessID: p.id, Name: def.Name, Stats: stats, Source: "node"}})
	if def.OnStats != nil {
		def.OnStats(p.snapshot(), stats)
	}
	switch {
	case def.Limits.MaxMemoryMB > 0 && memMB > def.Limits.MaxMemoryMB:
		p.limitExceeded(api.ReasonMemory, def.Limits.MaxMemoryMB, memMB)
	case cpuBreach:
		p.limitExceeded(api.ReasonCPU, def.Limits.MaxCPUPercent, tree.CPUPercent)
	}
}
