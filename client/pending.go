package client

import (
	"cmp"
	"slices"
	"sync/atomic"
)

// pendingEmit is an event with an id that the node has not answered yet:
// sent on the current connection, or waiting for the next one.
type pendingEmit struct {
	id uint64
	// head is the line up to the id: `{"type":"event",…,"timestamp":N`,
	// kept to resend the event after a reconnect.
	head []byte
	// done receives the answer: nil for an ack, a *NodeError, or why the
	// client stopped. Capacity 1, written at most once, by deliver. Nil for
	// an event sent with EmitAsync, which nobody waits for.
	done chan error
	// watch is watchWaiting until either deliver hands the answer to the
	// Emit (watchAnswered) or the Emit stops waiting because its ctx ended
	// (watchAbandoned), whichever comes first: so an answer is either
	// returned by Emit or recorded for Flush, never both nor neither.
	watch atomic.Int32
	event string
}

const (
	watchWaiting int32 = iota
	watchAnswered
	watchAbandoned
)

// size is what the event counts against the buffer's byte bound.
func (p *pendingEmit) size() int { return len(p.head) + idTailBytes }

// deliver hands the answer to the Emit waiting for it and reports whether
// there was one. It never blocks.
func (p *pendingEmit) deliver(err error) bool {
	if p.done != nil && p.watch.CompareAndSwap(watchWaiting, watchAnswered) {
		p.done <- err
		return true
	}
	return false
}

// abandon tells p its Emit stops waiting. It returns false when the answer
// was delivered meanwhile: the Emit must then read it from done.
func (p *pendingEmit) abandon() bool {
	return p.watch.CompareAndSwap(watchWaiting, watchAbandoned)
}

// pendingQueue holds the unanswered events in id order. Ids are handed out
// in increasing order and pushed as they are, so the queue stays sorted:
// an answer finds its event by binary search (usually at the front, as the
// node answers in order), the oldest unanswered event is at the front, and
// a reconnect resends the events in order without sorting. An answered
// event leaves a hole (a slot without event, its id kept for the search);
// holes are dropped from the front, and compacted when they outnumber the
// live events. The client's mutex guards the queue.
type pendingQueue struct {
	slots []pendingSlot // ids increasing
	head  int           // slots[:head] are all holes
	live  int           // slots with an event
	bytes int           // sum of size() over the live events
}

type pendingSlot struct {
	id uint64
	p  *pendingEmit // nil once answered
}

// push adds p, whose id is greater than every id in the queue.
func (q *pendingQueue) push(p *pendingEmit) {
	q.slots = append(q.slots, pendingSlot{id: p.id, p: p})
	q.live++
	q.bytes += p.size()
}

// take removes and returns the event with id, or nil when none has it.
func (q *pendingQueue) take(id uint64) *pendingEmit {
	live := q.slots[q.head:]
	i, found := 0, len(live) > 0 && live[0].id == id
	if !found {
		i, found = slices.BinarySearchFunc(live, id, func(s pendingSlot, id uint64) int { return cmp.Compare(s.id, id) })
	}
	if !found || live[i].p == nil {
		return nil
	}
	p := live[i].p
	live[i].p = nil
	q.live--
	q.bytes -= p.size()
	for q.head < len(q.slots) && q.slots[q.head].p == nil {
		q.head++
	}
	switch {
	case q.head == len(q.slots):
		clear(q.slots)
		q.slots, q.head = q.slots[:0], 0
	case len(q.slots)-q.head > 4*q.live+64:
		q.compact()
	}
	return p
}

// compact drops every hole.
func (q *pendingQueue) compact() {
	kept := q.slots[:0]
	for _, s := range q.slots[q.head:] {
		if s.p != nil {
			kept = append(kept, s)
		}
	}
	clear(q.slots[len(kept):])
	q.slots, q.head = kept, 0
}

// oldest returns the unanswered event with the smallest id, or nil.
func (q *pendingQueue) oldest() *pendingEmit {
	if q.head < len(q.slots) {
		return q.slots[q.head].p
	}
	return nil
}

// appendLines appends every unanswered event as a line, in id order.
func (q *pendingQueue) appendLines(dst []byte) []byte {
	for _, s := range q.slots[q.head:] {
		if s.p != nil {
			dst = appendIDTail(append(dst, s.p.head...), s.id)
		}
	}
	return dst
}

// drain removes and returns every unanswered event, in id order.
func (q *pendingQueue) drain() []*pendingEmit {
	out := make([]*pendingEmit, 0, q.live)
	for _, s := range q.slots[q.head:] {
		if s.p != nil {
			out = append(out, s.p)
		}
	}
	*q = pendingQueue{}
	return out
}
