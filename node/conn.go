package node

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"sync"

	"github.com/corral-run/corral/client/wire"
)

// conn is one open connection from a child to its process's socket. Each
// has a read loop (parse, validate, report, queue the answer) and, while
// answers are queued, a writer (outbox.go). Neither is per event.
type conn struct {
	p         *process
	nc        net.Conn
	out       *outbox
	closeOnce sync.Once
	// ackAware is set once the child sent any line with an id: only such
	// children are told about lines too broken to carry one.
	ackAware bool
	// scratch and msgID are the read loop's reusable payload and
	// message id (<processId>:<id>) buffers.
	scratch, msgID []byte
	// dec decodes the read loop's lines, reusing the strings of earlier ones.
	dec wire.Decoder
	// rejected counts rejected lines, to rate-limit their logging.
	rejected int
}

// maxConnsPerProcess bounds the connections open on one process's socket
// (a child needs one; a reconnect may briefly overlap the old one), so a
// child cannot spend the node's file descriptors.
const maxConnsPerProcess = 8

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
		c := &conn{p: p, nc: nc}
		c.out = newOutbox(func() {
			p.sup.wg.Add(1)
			go c.writeLoop()
		}, func() { c.nc.Close() })
		p.mu.Lock()
		if p.st.status().Finished() {
			p.mu.Unlock()
			nc.Close()
			continue
		}
		if len(p.conns) >= maxConnsPerProcess {
			p.mu.Unlock()
			nc.Close()
			p.sup.log.Warn("refused a connection: too many open on this socket", "process", p.id, "name", p.def.Name, "max", maxConnsPerProcess)
			continue
		}
		p.conns[c] = struct{}{}
		p.latest = c
		p.mu.Unlock()
		p.sup.wg.Add(1)
		go c.readLoop()
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
		// No kept buffer: a long line's is dropped once it is handled, so
		// an idle child costs only r.
		line, err := wire.ReadLine(r, max, nil)
		switch {
		case errors.Is(err, wire.ErrLineTooLong):
			c.tooLong()
			continue
		case err != nil:
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				c.p.sup.log.Debug("child connection ended", "process", c.p.id, "err", err)
			}
			return
		}
		line = bytes.TrimRight(line, "\r") // a CRLF line
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		c.handle(line)
		if c.out.wait() != nil {
			return
		}
	}
}

// readBufferSize is each connection's read buffer: small, because a node
// holds one per child (1,000 idle children cost 8 MiB), yet a read still
// carries dozens of typical lines. Longer lines are assembled separately.
const readBufferSize = 8 << 10

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
