package client

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/corral-run/corral/client/wire"
)

// disconnectTimeout bounds Disconnect's flush and its wait for the node to
// close its side.
const disconnectTimeout = 5 * time.Second

// dialTimeout bounds one connection attempt.
const dialTimeout = 5 * time.Second

// session is one open connection. It has two goroutines, the writer and the
// reader; the supervisor (run) owns the session and ends it.
type session struct {
	conn     net.Conn
	lost     chan struct{} // closed by fail
	failOnce sync.Once
	err      error // why the session ended; read after lost is closed
	writeErr error // the writer's error, read after writerDone is closed
	// unwritten is what the failed write left, from the start of the line
	// it stopped in; read after writerDone is closed.
	unwritten  []byte
	writerDone chan struct{}
	readerDone chan struct{}
}

func (s *session) fail(err error) {
	s.failOnce.Do(func() {
		s.err = err
		close(s.lost)
	})
}

// close ends the session at once and waits for its goroutines.
func (s *session) close() {
	s.fail(net.ErrClosed)
	s.conn.Close()
	<-s.writerDone
	<-s.readerDone
}

// dial connects to the node, making up to tries attempts a reconnect
// interval apart; with waitFirst it also waits an interval before the first.
// It stops when ctx ends or the client is disconnected.
func (c *Client) dial(ctx context.Context, tries int, waitFirst bool) (net.Conn, error) {
	network, addr := c.cfg.address()
	what := "connect"
	if waitFirst {
		what = "reconnect"
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(c.ctx, cancel)()
	if tries <= 0 {
		return nil, fmt.Errorf("cannot %s to the Corral node at %s:%s: %w (reconnect attempts are off)", what, network, addr, ErrGaveUp)
	}
	d := net.Dialer{Timeout: dialTimeout}
	var last error
	for i := range tries {
		if i > 0 || waitFirst {
			t := time.NewTimer(c.opts.reconnect)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
		}
		if ctx.Err() != nil {
			break
		}
		conn, err := d.DialContext(ctx, network, addr)
		if err == nil {
			return conn, nil
		}
		last = err
		c.log.Debug("cannot connect to the node", "process", c.cfg.ProcessID, "attempt", i+1, "attempts", tries, "err", err)
	}
	if ctx.Err() != nil {
		if c.ctx.Err() != nil {
			return nil, ErrClosed
		}
		if last != nil {
			return nil, fmt.Errorf("cannot %s to the Corral node at %s:%s: %w (last attempt: %v)", what, network, addr, ctx.Err(), last)
		}
		return nil, fmt.Errorf("cannot %s to the Corral node at %s:%s: %w", what, network, addr, ctx.Err())
	}
	return nil, fmt.Errorf("cannot %s to the Corral node at %s:%s: %w after %d attempts: %w", what, network, addr, ErrGaveUp, tries, last)
}

// startSession makes conn the client's connection: it queues "connected",
// then every held event in order — with acks on, every unanswered event
// again in id order: those the last connection sent (same line, same id),
// then those taken while the node was away; with acks off, the events the
// last connection did not write and those taken meanwhile — and starts the
// writer and the reader. It returns nil, without touching conn, when the
// client was disconnected meanwhile.
func (c *Client) startSession(conn net.Conn) *session {
	s := &session{
		conn:       conn,
		lost:       make(chan struct{}),
		writerDone: make(chan struct{}),
		readerDone: make(chan struct{}),
	}
	c.mu.Lock()
	if c.state != stateConnecting && c.state != stateReconnecting {
		c.mu.Unlock()
		return nil
	}
	n, size := c.heldLocked()
	out := c.appendControl(make([]byte, 0, 256+size+n*idTailBytes), wire.TypeConnected, nil)
	if c.opts.acks {
		out = c.pending.appendLines(out)
	} else {
		out = append(out, c.out...) // events only: see lose
	}
	c.out, c.spare = out, nil
	c.session, c.state = s, stateConnected
	c.notifyLocked()
	c.mu.Unlock()
	go c.writeLoop(s)
	go c.readLoop(s)
	c.signalWriter()
	return s
}

// writeLoop writes what Emit and the supervisor queue, a whole batch per
// write: while one batch is on its way the next one gathers.
func (c *Client) writeLoop(s *session) {
	defer close(s.writerDone)
	for {
		select {
		case <-c.wake:
		case <-s.lost:
			return
		}
		c.mu.Lock()
		if c.session != s {
			c.mu.Unlock()
			return
		}
		buf := c.out
		events, size := c.outEvents, c.outBytes
		c.out, c.spare = c.spare[:0], nil
		c.outEvents, c.outBytes = 0, 0
		closing := c.state == stateClosed
		c.notifyLocked()
		c.mu.Unlock()
		if closing {
			// The last batch gets its own time to go out, on top of what the
			// batch in flight when Disconnect came had (see teardown).
			s.conn.SetWriteDeadline(time.Now().Add(disconnectTimeout))
		}
		if len(buf) > 0 {
			if n, err := s.conn.Write(buf); err != nil {
				s.unwritten = buf[bytes.LastIndexByte(buf[:n], '\n')+1:]
				s.writeErr = err
				s.fail(fmt.Errorf("cannot write to the node: %w", err))
				return
			}
		}
		c.mu.Lock()
		if events > 0 { // acks off: written events leave the buffer
			c.held -= events
			c.heldBytes -= size
			c.notifyLocked()
		}
		if !closing && c.spare == nil && cap(buf) <= 2*maxQueuedBytes {
			c.spare = buf[:0]
		}
		c.mu.Unlock()
		if closing {
			return // Disconnect queued its last line before marking the state
		}
	}
}

// run supervises the client from its first session on: it sends heartbeats
// and stats, reconnects when the session drops, and ends the client when it
// is disconnected or gives up.
func (c *Client) run(s *session) {
	defer close(c.stopped)
	defer c.inbox.stop()
	for {
		if !c.serve(s) {
			c.closeErr = c.teardown(s)
			c.finish(ErrClosed)
			return
		}
		s.close()
		if !c.lose(s) {
			c.finish(ErrClosed)
			return
		}
		c.log.Warn("lost the connection to the node; reconnecting", "process", c.cfg.ProcessID, "err", s.err)
		conn, err := c.dial(c.ctx, c.opts.maxAttempts, true)
		if err == nil {
			if s = c.startSession(conn); s != nil {
				c.log.Info("reconnected to the node", "process", c.cfg.ProcessID)
				continue
			}
			conn.Close()
		}
		if c.ctx.Err() != nil {
			c.finish(ErrClosed)
			return
		}
		c.log.Error("cannot reconnect to the node; giving up", "process", c.cfg.ProcessID, "err", err)
		c.finish(err)
		return
	}
}

// serve runs the session's timers until the session drops (true) or the
// client is disconnected (false).
func (c *Client) serve(s *session) (lost bool) {
	heartbeat := time.NewTicker(c.opts.heartbeat)
	defer heartbeat.Stop()
	var statsTick <-chan time.Time
	if c.opts.stats {
		c.sendStats(s)
		t := time.NewTicker(c.opts.statsInterval)
		defer t.Stop()
		statsTick = t.C
	}
	for {
		select {
		case <-c.ctx.Done():
			return false
		case <-s.lost:
			return true
		case <-heartbeat.C:
			c.send(s, wire.TypeHeartbeat, nil)
		case <-statsTick:
			c.sendStats(s)
		}
	}
}

// send queues a control line on s, unless s is no longer the session.
func (c *Client) send(s *session, typ string, field []byte) {
	c.mu.Lock()
	if c.session != s || c.state != stateConnected {
		c.mu.Unlock()
		return
	}
	wasEmpty := len(c.out) == 0
	c.out = c.appendControl(c.out, typ, field)
	c.mu.Unlock()
	if wasEmpty {
		c.signalWriter()
	}
}

// teardown ends s after Disconnect: it lets the writer flush the last lines
// (Disconnect queued "disconnecting"), half-closes the connection and reads
// the node's last answers until it closes its side. Each step may take up
// to disconnectTimeout, so a node that stopped reading or never closes
// cannot hold Disconnect for long.
func (c *Client) teardown(s *session) error {
	s.conn.SetWriteDeadline(time.Now().Add(disconnectTimeout))
	<-s.writerDone
	if s.writeErr == nil {
		if cw, ok := s.conn.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
			s.conn.SetReadDeadline(time.Now().Add(disconnectTimeout))
			<-s.readerDone
		}
	}
	s.close()
	if s.writeErr != nil {
		return fmt.Errorf("cannot flush to the node: %w", s.writeErr)
	}
	return nil
}

// lose marks s as dropped and starts reconnecting. It returns false when
// the client was disconnected meanwhile.
func (c *Client) lose(s *session) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != stateConnected || c.session != s {
		return false
	}
	c.session, c.state = nil, stateReconnecting
	if c.opts.acks {
		// Every event in out is also pending and is resent from there.
		c.out = c.out[:0]
	} else {
		// What the failed write left, then what it had not taken yet, all
		// but the events dropped: the old heartbeats and "connected" are of
		// no use to the next connection. Lines written before are gone
		// with the connection.
		carry := make([]byte, 0, len(s.unwritten)+len(c.out))
		carry = appendEventLines(appendEventLines(carry, s.unwritten), c.out)
		n := bytes.Count(carry, []byte{'\n'})
		c.out, c.spare = carry, nil
		c.outEvents, c.outBytes = n, len(carry)
		c.held, c.heldBytes = n, len(carry)
	}
	c.notifyLocked()
	return true
}

// eventPrefix starts every event line (appendEventHead).
var eventPrefix = []byte(`{"type":"event",`)

// appendEventLines appends the event lines of src, whole lines ending in
// a newline, to dst.
func appendEventLines(dst, src []byte) []byte {
	for len(src) > 0 {
		i := bytes.IndexByte(src, '\n') + 1
		if i == 0 {
			break // no partial line is ever queued
		}
		if bytes.HasPrefix(src, eventPrefix) {
			dst = append(dst, src[:i]...)
		}
		src = src[i:]
	}
	return dst
}

// finish stops the client for good: it fails every event it still holds
// with cause, so Emits waiting for one return cause and Flush reports it,
// and wakes every waiting Emit and Flush.
func (c *Client) finish(cause error) {
	c.mu.Lock()
	if c.state != stateClosed {
		c.state = stateGaveUp
	}
	c.err = cause
	c.failedFrom = c.oldestHeldLocked()
	lost, _ := c.heldLocked()
	unseen := 0
	if c.opts.acks {
		for _, p := range c.pending.drain() {
			if !p.deliver(cause) {
				unseen++
			}
		}
	} else {
		unseen = lost
	}
	c.held, c.heldBytes, c.outEvents, c.outBytes = 0, 0, 0, 0
	c.session, c.out, c.spare = nil, nil, nil
	c.finished = true
	c.notifyLocked()
	c.mu.Unlock()
	if unseen > 0 {
		c.log.Warn("events were never delivered to the node", "process", c.cfg.ProcessID, "count", unseen, "err", cause)
	}
}
