package node

import (
	"container/heap"
	"sync"
	"time"
)

// retention holds the processes that have ended for good (phase exited),
// oldest end first, so that prune finds what to forget without looking
// at the running ones: it runs at every exit, and a walk over every
// process there made a mass stop of n processes cost n² steps, all under
// the supervisor's lock.
//
// Its lock is the innermost of all: add is called under a process's lock
// (transition), and no other lock is taken under it.
type retention struct {
	mu    sync.Mutex
	ended endedHeap
}

// add keeps p, which has just ended for good at at.
func (r *retention) add(p *process, at time.Time) {
	r.mu.Lock()
	heap.Push(&r.ended, endedProc{p: p, at: at})
	r.mu.Unlock()
}

// take removes and returns the processes that ended before cutoff, and the
// oldest beyond the max most recent.
func (r *retention) take(cutoff time.Time, max int) []endedProc {
	r.mu.Lock()
	defer r.mu.Unlock()
	var gone []endedProc
	for len(r.ended) > 0 && (len(r.ended) > max || r.ended[0].at.Before(cutoff)) {
		gone = append(gone, heap.Pop(&r.ended).(endedProc))
	}
	return gone
}

// endedProc is a process that has ended for good, and when.
type endedProc struct {
	p  *process
	at time.Time
}

// endedHeap is a container/heap of ended processes, the oldest end at the
// top.
type endedHeap []endedProc

func (h endedHeap) Len() int           { return len(h) }
func (h endedHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h endedHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *endedHeap) Push(x any)        { *h = append(*h, x.(endedProc)) }
func (h *endedHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = endedProc{}
	*h = old[:len(old)-1]
	return e
}

// prune forgets finished processes past the retention time, and the oldest
// finished ones beyond the retention count, so records do not grow without
// end: each goes from the list, and its record, log files and FIFO from
// the disk. A process waiting for an auto-restart is kept: only those that
// ended for good are in s.retained.
func (s *Supervisor) prune() {
	taken := s.retained.take(time.Now().Add(-s.cfg.Retention), s.cfg.RetentionMax)
	if len(taken) == 0 {
		return
	}
	gone := make([]*process, 0, len(taken))
	s.mu.Lock()
	for _, e := range taken {
		p := e.p
		if s.procs[p.id] != p {
			// Not listed yet: Recover (and a lost child) end a process
			// before they list it. It is forgotten at the next prune.
			s.retained.add(p, e.at)
			continue
		}
		delete(s.procs, p.id)
		// Marked before its record is removed: a persist that writes the
		// record back after the removal sees the mark and removes it again
		// (persist says why no order escapes both).
		p.mu.Lock()
		p.pruned = true
		p.mu.Unlock()
		gone = append(gone, p)
	}
	s.mu.Unlock()
	f, forget := s.rep.(interface{ Forget(id string) })
	for _, p := range gone {
		s.unpersist(p.id)
		s.removeLogs(p)
		if forget {
			f.Forget(p.id)
		}
	}
}
