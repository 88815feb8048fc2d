package node

import (
	"sync/atomic"

	"github.com/corral-run/corral/client/wire"
)

// What the node tells its metrics (package bus/metrics reads it at scrape
// time): counters kept on the read loops' paths with one atomic increment
// each, and the state of the sockets, read when asked. Nothing here is
// per event beyond that increment.

// rejectCodes are the wire error codes a line can be refused with, in the
// order of LineStats.Rejected.
var rejectCodes = [...]string{
	wire.CodeMalformed, wire.CodeMissingField, wire.CodeWrongProcess, wire.CodeUnknownType,
	wire.CodeInvalidEvent, wire.CodeUnknownEvent, wire.CodeSchemaInvalid, wire.CodeLineTooLong,
	wire.CodeUnavailable, wire.CodeInternal,
}

// lineCounters counts the answers to the children's lines.
type lineCounters struct {
	acked    atomic.Uint64
	rejected [len(rejectCodes)]atomic.Uint64
}

// reject counts a line refused with code.
func (l *lineCounters) reject(code string) {
	for i, c := range rejectCodes {
		if c == code {
			l.rejected[i].Add(1)
			return
		}
	}
	l.rejected[len(rejectCodes)-1].Add(1) // internal
}

// answered counts the answer to an event that asked for one: acked, or
// refused as unavailable (it could not be handed on or stored).
func (l *lineCounters) answered(err error) {
	if err == nil {
		l.acked.Add(1)
		return
	}
	l.reject(wire.CodeUnavailable)
}

// LineStats is what the node answered its children's lines since it
// started.
type LineStats struct {
	// Acked counts the events acknowledged to their child (handed to
	// NATS, or stored by JetStream with durable events).
	Acked uint64
	// Rejected counts the lines refused, by wire error code
	// (wire.CodeMalformed…): every code is present.
	Rejected map[string]uint64
}

// LineStats returns the counts of the answers to the children's lines.
func (s *Supervisor) LineStats() LineStats {
	out := LineStats{Acked: s.lines.acked.Load(), Rejected: make(map[string]uint64, len(rejectCodes))}
	for i, c := range rejectCodes {
		out.Rejected[c] = s.lines.rejected[i].Load()
	}
	return out
}

// Connections is the number of children's connections open on the
// node's sockets now.
func (s *Supervisor) Connections() int {
	s.mu.RLock()
	ps := make([]*process, 0, len(s.procs))
	for _, p := range s.procs {
		ps = append(ps, p)
	}
	s.mu.RUnlock()
	n := 0
	for _, p := range ps {
		p.mu.Lock()
		n += len(p.conns)
		p.mu.Unlock()
	}
	return n
}
