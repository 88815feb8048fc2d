package node

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// conn is one open connection from a child to its process's socket. Each
// has two goroutines: the read loop (parse, validate, report, queue the
// answer) and the writer (flush queued answers). Neither is per event.
type conn struct {
	p         *process
	nc        net.Conn
	out       *outbox
	closeOnce sync.Once
	// ackAware is set once the child sent any line with an id: only such
	// children are told about lines too broken to carry one.
	ackAware bool
	// scratch is the read loop's reusable payload buffer.
	scratch []byte
	// rejected counts rejected lines, to rate-limit their logging.
	rejected int
}

func (p *process) acceptLoop() {
	defer p.sup.wg.Done()
	for {
		nc, err := p.listener.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				p.sup.log.Error("cannot accept child connection", "process", p.id, "name", p.def.Name, "err", err)
			}
			return
		}
		c := &conn{p: p, nc: nc, out: newOutbox()}
		p.mu.Lock()
		if p.status.Finished() {
			p.mu.Unlock()
			nc.Close()
			continue
		}
		p.conns[c] = struct{}{}
		p.latest = c
		p.mu.Unlock()
		p.sup.wg.Add(2)
		go c.readLoop()
		go c.writeLoop()
	}
}

func (c *conn) close() {
	c.closeOnce.Do(func() {
		c.nc.Close()
		c.out.close()
	})
}

// readLoop reads lines until the connection ends.
func (c *conn) readLoop() {
	defer c.p.sup.wg.Done()
	defer c.detach()
	r := bufio.NewReaderSize(c.nc, readBufferSize)
	max := c.p.sup.cfg.MaxLineBytes
	for {
		line, err := readLine(r, max)
		switch {
		case errors.Is(err, errLineTooLong):
			c.tooLong()
			continue
		case err != nil:
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				c.p.sup.log.Debug("child connection ended", "process", c.p.id, "err", err)
			}
			return
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		c.handle(line)
		if c.out.wait() != nil {
			return
		}
	}
}

var errLineTooLong = errors.New("line too long")

// readBufferSize is each connection's read buffer: small, because a node
// holds one per child (1,000 idle children cost 8 MiB), yet a read still
// carries dozens of typical lines. Longer lines are assembled separately.
const readBufferSize = 8 << 10

// readLine returns the next line, newline included, valid until the next
// call. A line longer than max bytes (without its newline) is consumed whole
// and reported as errLineTooLong, without buffering more than max bytes.
func readLine(r *bufio.Reader, max int) ([]byte, error) {
	frag, err := r.ReadSlice('\n')
	if err == nil {
		if len(frag)-1 > max {
			return nil, errLineTooLong
		}
		return frag, nil
	}
	if !errors.Is(err, bufio.ErrBufferFull) {
		return nil, err // a partial line at EOF is dropped with the connection
	}
	var long []byte
	tooLong := false
	for {
		if !tooLong {
			long = append(long, frag...)
			if len(long) > max {
				tooLong, long = true, nil
			}
		}
		frag, err = r.ReadSlice('\n')
		switch {
		case err == nil:
			if tooLong || len(long)+len(frag)-1 > max {
				return nil, errLineTooLong
			}
			return append(long, frag...), nil
		case !errors.Is(err, bufio.ErrBufferFull):
			return nil, err
		}
	}
}

// detach removes the connection from its process once reading has ended.
func (c *conn) detach() {
	c.out.close() // the writer sends what is queued, then closes the connection
	p := c.p
	p.mu.Lock()
	delete(p.conns, c)
	if p.latest == c {
		p.latest = nil
		for other := range p.conns {
			p.latest = other
		}
	}
	p.mu.Unlock()
}

func (c *conn) writeLoop() {
	defer c.p.sup.wg.Done()
	defer c.close()
	var batch []byte
	for {
		var ok bool
		batch, ok = c.out.take(batch[:0])
		if !ok {
			return
		}
		_ = c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
		if _, err := c.nc.Write(batch); err != nil {
			c.p.sup.log.Debug("cannot write to child", "process", c.p.id, "err", err)
			return
		}
	}
}

// writeTimeout bounds one write to a child that stopped reading.
const writeTimeout = 10 * time.Second

// outbox is the queue of bytes waiting to be written to a child. The read
// loop and Send append under a short lock; the writer swaps the buffer out
// and writes it without the lock, so one write carries many answers.
type outbox struct {
	mu      sync.Mutex
	buf     []byte
	closed  bool
	wake    chan struct{} // cap 1: something to write
	drained chan struct{} // cap 1: the writer took the buffer
}

// outboxLimit is how much may wait for a slow child before its read loop
// pauses (back-pressure instead of unbounded memory).
const outboxLimit = 1 << 20

func newOutbox() *outbox {
	return &outbox{wake: make(chan struct{}, 1), drained: make(chan struct{}, 1)}
}

// append adds bytes produced by fn.
func (o *outbox) append(fn func([]byte) []byte) {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return
	}
	o.buf = fn(o.buf)
	o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// send queues one JSON value as a line.
func (o *outbox) send(msg []byte) {
	o.append(func(b []byte) []byte { return append(append(b, msg...), '\n') })
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

// take waits for bytes and returns them appended to spare.
func (o *outbox) take(spare []byte) ([]byte, bool) {
	for {
		o.mu.Lock()
		if len(o.buf) > 0 {
			out := o.buf
			o.buf = spare
			o.mu.Unlock()
			select {
			case o.drained <- struct{}{}:
			default:
			}
			return out, true
		}
		if o.closed {
			o.mu.Unlock()
			return nil, false
		}
		o.mu.Unlock()
		<-o.wake
	}
}

func (o *outbox) close() {
	o.mu.Lock()
	o.closed = true
	o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default:
	}
	select {
	case o.drained <- struct{}{}:
	default:
	}
}
