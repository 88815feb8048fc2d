package client

import (
	"context"
	"fmt"
)

// take makes the client hold an event whose line head encodeEvent made:
// it queues it for the writer when connected, keeps it for the next
// connection when not, and with acks on records it as pending. It waits
// while the buffer or the writer's queue is full, or while Connect is
// dialling. With acks on it returns the pending event, which has a done
// channel when watch is set.
func (c *Client) take(ctx context.Context, event string, head []byte, watch bool) (*pendingEmit, error) {
	size := len(head) + len("}\n")
	if c.opts.acks {
		size = len(head) + idTailBytes
	}
	c.mu.Lock()
	for {
		switch c.state {
		case stateConnected, stateReconnecting:
		case stateConnecting:
			if err := c.waitLocked(ctx); err != nil {
				return nil, fmt.Errorf("cannot emit %q: not connected to the node yet: %w", event, err)
			}
			c.mu.Lock()
			continue
		case stateIdle:
			c.mu.Unlock()
			return nil, fmt.Errorf("cannot emit %q: %w", event, ErrNotConnected)
		default: // gaveUp, closed
			err := c.err
			c.mu.Unlock()
			return nil, fmt.Errorf("cannot emit %q: %w", event, err)
		}
		if n, bytes := c.heldLocked(); n > 0 && (n >= c.opts.bufEvents || bytes+size > c.opts.bufBytes) {
			if err := c.waitLocked(ctx); err != nil {
				return nil, errorf(ErrBufferFull, "cannot emit %q: the buffer is full, %d events (%d bytes) wait for the node: %w", event, n, bytes, err)
			}
			c.mu.Lock()
			continue
		}
		connected := c.state == stateConnected
		if connected && len(c.out) > 0 && len(c.out)+size > maxQueuedBytes {
			if err := c.waitLocked(ctx); err != nil {
				return nil, errorf(ErrBufferFull, "cannot emit %q: the send queue is full: %w", event, err)
			}
			c.mu.Lock()
			continue
		}
		break
	}

	wasEmpty := len(c.out) == 0
	c.nextID++
	var p *pendingEmit
	if c.opts.acks {
		p = &pendingEmit{id: c.nextID, head: head, event: event}
		if watch {
			p.done = make(chan error, 1)
		}
		c.pending.push(p)
		if c.state == stateConnected {
			c.out = appendIDTail(append(c.out, head...), p.id)
		} else {
			wasEmpty = false // pending is resent from on the next connection
		}
	} else {
		// Connected or not, out is carried over to the next connection.
		c.out = append(append(c.out, head...), "}\n"...)
		c.outEvents++
		c.outBytes += size
		c.held++
		c.heldBytes += size
		wasEmpty = wasEmpty && c.state == stateConnected
	}
	c.mu.Unlock()
	if wasEmpty {
		c.signalWriter()
	}
	return p, nil
}

// heldLocked returns how many events the client holds and their size.
// c.mu is held.
func (c *Client) heldLocked() (n, bytes int) {
	if c.opts.acks {
		return c.pending.live, c.pending.bytes
	}
	return c.held, c.heldBytes
}

// oldestHeldLocked returns the number of the oldest event the client
// holds, 0 when it holds none. c.mu is held.
func (c *Client) oldestHeldLocked() uint64 {
	if c.opts.acks {
		if p := c.pending.oldest(); p != nil {
			return p.id
		}
		return 0
	}
	if c.held == 0 {
		return 0
	}
	return c.nextID - uint64(c.held) + 1 // acks off: first in, first out
}

// refusedLocked records the node's refusal of an event whose Emit is not
// waiting for it, for the next Flush. c.mu is held.
func (c *Client) refusedLocked(err *NodeError) {
	if c.refusals == 0 {
		c.firstRefusal = err
	}
	c.refusals++
}

// Flush waits until every event taken before it was called has been
// delivered: with acks on, answered by the node; with acks off, written to
// the socket. Events that wait for a reconnect are waited for too.
//
// It returns nil when they were, or
//   - an error wrapping [ErrRejected] and the first [*NodeError] when the
//     node refused events that no Emit was waiting for (sent with
//     [Client.EmitAsync], or whose Emit's ctx ended) since the last Flush
//     that reported refusals;
//   - an error wrapping [ErrGaveUp] or [ErrClosed] when the client stopped
//     before delivering them (they are lost);
//   - an error wrapping ctx's error when ctx ended first; the events are
//     still held and will be sent.
//
// Flush does not stop other goroutines from emitting meanwhile, and does
// not wait for their events.
func (c *Client) Flush(ctx context.Context) error {
	c.mu.Lock()
	target := c.nextID
	for {
		if c.finished && c.failedFrom != 0 && c.failedFrom <= target {
			err := c.err
			c.mu.Unlock()
			return fmt.Errorf("cannot flush: events were not delivered: %w", err)
		}
		if oldest := c.oldestHeldLocked(); oldest == 0 || oldest > target {
			n, first := c.refusals, c.firstRefusal
			c.refusals, c.firstRefusal = 0, nil
			c.mu.Unlock()
			if n > 0 {
				return fmt.Errorf("cannot flush: the node refused %d events; the first: %w", n, first)
			}
			return nil
		}
		n, _ := c.heldLocked()
		if err := c.waitLocked(ctx); err != nil {
			return fmt.Errorf("cannot flush: %d events wait for the node: %w", n, err)
		}
		c.mu.Lock()
	}
}
