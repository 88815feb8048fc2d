package node

import (
	"slices"
	"time"
)

// prune forgets finished processes past the retention time, and the oldest
// finished ones beyond the retention count, so records do not grow without
// end: each goes from the list, and its record, log files and FIFO from
// the disk. A process waiting for an auto-restart is kept.
func (s *Supervisor) prune() {
	now := time.Now()
	type ended struct {
		id string
		at time.Time
	}
	var finished []ended
	var gone []*process
	s.mu.Lock()
	for id, p := range s.procs {
		if !p.finished() { // most are running: no lock for them
			continue
		}
		p.mu.Lock()
		if p.st.phase == exited {
			if now.Sub(p.st.endedAt) > s.cfg.Retention {
				gone = append(gone, p)
			} else {
				finished = append(finished, ended{id, p.st.endedAt})
			}
		}
		p.mu.Unlock()
	}
	if extra := len(finished) - s.cfg.RetentionMax; extra > 0 {
		slices.SortFunc(finished, func(a, b ended) int { return a.at.Compare(b.at) })
		for _, e := range finished[:extra] {
			gone = append(gone, s.procs[e.id])
		}
	}
	for _, p := range gone {
		delete(s.procs, p.id)
		// Marked before its record is removed: a persist that writes the
		// record back after the removal sees the mark and removes it again
		// (persist says why no order escapes both).
		p.mu.Lock()
		p.pruned = true
		p.mu.Unlock()
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
