package node

import (
	"net"
	"sync"
	"time"
)

// writeLoop writes queued bytes to the child until the outbox is empty,
// then ends: an idle child costs no writer goroutine, and the next append
// starts one again.
func (c *conn) writeLoop() {
	defer c.p.sup.wg.Done()
	var batch []byte
	for {
		var ok bool
		if batch, ok = c.out.take(batch[:0]); !ok {
			return
		}
		_ = c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
		if _, err := c.nc.Write(batch); err != nil {
			c.p.sup.log.Debug("cannot write to child", "process", c.p.id, "err", err)
			c.out.fail()
			c.nc.Close()
			return
		}
	}
}

// writeTimeout bounds one write to a child that stopped reading.
const writeTimeout = 10 * time.Second

// outbox is the queue of bytes waiting to be written to a child. The read
// loop, acks arriving from the bus, and Send append under a short lock; a
// writer goroutine, started on demand, swaps the buffer out and writes it
// without the lock, so one write carries many answers.
type outbox struct {
	mu      sync.Mutex
	buf     []byte
	closed  bool
	running bool          // a writer goroutine owns the draining
	drained chan struct{} // cap 1: the writer took the buffer
	start   func()        // starts a writer goroutine
	finish  func()        // called once closed and drained: closes the connection
}

// outboxLimit is how much may wait for a slow child before its read loop
// pauses (back-pressure instead of unbounded memory).
const outboxLimit = 1 << 20

func newOutbox(start, finish func()) *outbox {
	return &outbox{drained: make(chan struct{}, 1), start: start, finish: finish}
}

// append adds bytes produced by fn and makes sure a writer runs.
func (o *outbox) append(fn func([]byte) []byte) {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return
	}
	o.buf = fn(o.buf)
	startWriter := !o.running
	o.running = true
	o.mu.Unlock()
	if startWriter {
		o.start()
	}
}

// send queues one JSON value as a line, unless outboxLimit bytes or more
// already wait for the child: then it queues nothing and returns how many
// wait. (What the writer has taken and is writing is not counted: at most
// one more batch.)
func (o *outbox) send(msg []byte) (waiting int, ok bool) {
	o.mu.Lock()
	n := len(o.buf)
	o.mu.Unlock()
	if n >= outboxLimit {
		return n, false
	}
	o.append(func(b []byte) []byte { return append(append(b, msg...), '\n') })
	return 0, true
}

// wait blocks while more than outboxLimit bytes wait to be written.
func (o *outbox) wait() error {
	for {
		o.mu.Lock()
		n, closed := len(o.buf), o.closed
		o.mu.Unlock()
		if closed {
			return net.ErrClosed
		}
		if n <= outboxLimit {
			return nil
		}
		<-o.drained
	}
}

// take returns the queued bytes (swapping in spare), or false when there
// are none: the writer then ends, and if the outbox was closed meanwhile,
// the connection is finished.
func (o *outbox) take(spare []byte) ([]byte, bool) {
	o.mu.Lock()
	if len(o.buf) > 0 {
		out := o.buf
		o.buf = spare
		o.mu.Unlock()
		o.signal()
		return out, true
	}
	o.running = false
	closed := o.closed
	o.mu.Unlock()
	o.signal()
	if closed {
		o.finish()
	}
	return nil, false
}

// close stops new appends; what is queued is still written, then the
// connection is finished.
func (o *outbox) close() {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return
	}
	o.closed = true
	idle := !o.running
	o.mu.Unlock()
	o.signal()
	if idle {
		o.finish()
	}
}

// fail drops what is queued after a write error.
func (o *outbox) fail() {
	o.mu.Lock()
	o.closed, o.running, o.buf = true, false, nil
	o.mu.Unlock()
	o.signal()
}

func (o *outbox) signal() {
	select {
	case o.drained <- struct{}{}:
	default:
	}
}
