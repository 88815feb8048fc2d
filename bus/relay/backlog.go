package relay

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go"
)

// backlog keeps, in order, the core messages NATS could not take while it
// was away (nats.go's reconnect buffer was full), until the pump hands them
// on after the reconnection. Once it holds anything, later messages queue
// behind it, so order is kept.
type backlog struct {
	limit int // reports from a child wait at this many; supervisor reports are kept up to twice it

	mu      sync.Mutex
	msgs    []*nats.Msg
	n       int           // queued or in the pump's hands
	space   chan struct{} // closed when n drops under limit; nil when nobody waits
	closing bool

	busy atomic.Int64  // n, for the lock-free check on the publish path
	wake chan struct{} // cap 1: something to pump, or the link came back
}

// enqueue adds m to the backlog. A report from a child (paced) waits while
// the backlog is full, until Release; any other report is kept up to the
// hard limit and dropped beyond it.
func (r *Relay) enqueue(m *nats.Msg, paced bool) error {
	b := &r.backlog
	b.mu.Lock()
	for paced && b.n >= b.limit && r.waitCtx.Err() == nil {
		if b.space == nil {
			b.space = make(chan struct{})
		}
		space := b.space
		b.mu.Unlock()
		select {
		case <-space:
		case <-r.waitCtx.Done():
		}
		b.mu.Lock()
	}
	if b.n >= 2*b.limit {
		b.mu.Unlock()
		r.drop(m.Subject, ErrBacklogFull)
		return fmt.Errorf("cannot publish on %s: %w", m.Subject, ErrBacklogFull)
	}
	b.msgs = append(b.msgs, m)
	b.n++
	b.busy.Store(int64(b.n))
	b.mu.Unlock()
	b.poke()
	return nil
}

func (b *backlog) poke() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// take waits for messages and returns them all; false once the backlog is
// closing and empty.
func (b *backlog) take(r *Relay) ([]*nats.Msg, bool) {
	for {
		b.mu.Lock()
		if len(b.msgs) > 0 {
			out := b.msgs
			b.msgs = nil
			b.mu.Unlock()
			return out, true
		}
		closing := b.closing && b.n == 0
		b.mu.Unlock()
		if closing {
			return nil, false
		}
		select {
		case <-b.wake:
		case <-r.ctx.Done():
			return nil, false
		}
	}
}

// sent records that k messages the pump held are gone (handed on or
// dropped), and lets waiting children go on once there is room.
func (b *backlog) sent(k int) {
	b.mu.Lock()
	b.n -= k
	b.busy.Store(int64(b.n))
	if b.space != nil && b.n < b.limit {
		close(b.space)
		b.space = nil
	}
	b.mu.Unlock()
}

// putBack returns messages the pump could not send to the head of the
// backlog.
func (b *backlog) putBack(msgs []*nats.Msg) {
	b.mu.Lock()
	b.msgs = append(msgs, b.msgs...)
	b.mu.Unlock()
}

func (b *backlog) close() {
	b.mu.Lock()
	b.closing = true
	b.mu.Unlock()
	b.poke()
}

// discard empties the backlog and returns what it held.
func (b *backlog) discard() []*nats.Msg {
	b.mu.Lock()
	defer b.mu.Unlock()
	msgs := b.msgs
	b.msgs, b.n = nil, 0
	b.busy.Store(0)
	return msgs
}

// pump hands the backlog to NATS once the connection is back, in order.
func (r *Relay) pump() {
	defer r.work.Done()
	b := &r.backlog
	for {
		batch, ok := b.take(r)
		if !ok {
			return
		}
		for len(batch) > 0 {
			if !r.link.wait(r.ctx) {
				if r.ctx.Err() == nil { // the connection is closed for good
					for _, m := range batch {
						r.drop(m.Subject, nats.ErrConnectionClosed)
					}
					b.sent(len(batch))
					batch = nil
					continue
				}
				b.putBack(batch) // Close gave up: counted by Close
				return
			}
			err := r.nc.PublishMsg(batch[0])
			switch {
			case err == nil:
			case errors.Is(err, nats.ErrReconnectBufExceeded):
				continue // away again: wait for it
			default:
				r.drop(batch[0].Subject, err)
			}
			batch = batch[1:]
			b.sent(1)
		}
	}
}
