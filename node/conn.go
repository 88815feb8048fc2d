package node

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/corral-run/corral/client/wire"
	"github.com/corral-run/corral/node/procstat"
)

// Who may connect, and how a connection becomes the process's.
//
// Only the child speaks for the child: a connection is taken only from
// the child or a process of its tree. The node asks who connected (the
// peer's pid: SO_PEERCRED on a unix socket; on tcp the holder of the
// connecting socket, peer_linux.go), then walks that pid's parents up to a
// process it supervises; a process that was re-parented (its parent, a
// wrapper, exited) still belongs to the child whose process group it is
// in. A wrapper that execs the child (sh -c 'exec worker') or forks it
// (bun, sh -c 'worker') works: the real client is the child or a
// descendant. Anything else gets one error line (code "forbidden") and is
// closed.
//
// On unix sockets every process's <socket_dir>/<id>.sock is a symbolic
// link to one socket the node listens on (corrald.sock; corrald-<uid>.sock
// for children that run as another user): connect follows the link, and
// the peer's pid says which process it is. One listening socket for the
// node instead of one per child. On tcp each process keeps its port (the
// contract gives the child a port of its own).
//
// A connection that sends no valid line (well formed, for its process)
// within the handshake timeout is closed, and until it has sent one it is
// only pending: it is never where Send writes, and when a process's
// connections are all taken, a new one takes the place of the oldest
// pending one. So connections that never speak cannot lock the child out,
// nor receive what is sent to it.

// maxConnsPerProcess bounds the connections open on one process's socket
// (a child needs one; a reconnect may briefly overlap the old one), so a
// child cannot spend the node's file descriptors.
const maxConnsPerProcess = 8

// conn is one open connection from a child to its process's socket. Each
// has a read loop (parse, validate, report, queue the answer) and, while
// answers are queued, a writer (outbox.go). Neither is per event.
type conn struct {
	p         *process
	nc        net.Conn
	out       *outbox
	closeOnce sync.Once
	seq       uint64 // order of admission, for eviction (fixed)
	// established is set, under p.mu, once the connection sent a valid
	// line: only then does it count as the child's (Send, eviction).
	// spoke is the read loop's own copy.
	established bool
	spoke       bool
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

	// handling is set while the read loop acts on a line, during which it
	// reads nothing: the heartbeat watchdog does not judge a child whose
	// lines the node has left unread (lifecycle.go evHeartbeatDue).
	handling atomic.Bool
	// unanswered counts the events reported with a Done that has not
	// come yet; at the EventWindow, the read loop waits for room, which
	// answered signals while wantRoom is set. gone is closed with the
	// connection.
	unanswered atomic.Int32
	wantRoom   atomic.Bool
	room       chan struct{} // cap 1
	gone       chan struct{}
}

// sharedName is the node's own listening socket in the socket directory;
// children running as another user reach corrald-<uid>.sock.
const sharedName = "corrald.sock"

// sharedSocket is one listening unix socket that <id>.sock links point to.
type sharedSocket struct {
	name string // its name in the socket directory (the links' target)
	l    *net.UnixListener
}

// sharedFor returns the name of the listening socket for children that
// run as uid (and gid), creating it on first use.
func (s *Supervisor) sharedFor(uid, gid int) (string, error) {
	s.smu.Lock()
	defer s.smu.Unlock()
	if s.sockClosed {
		return "", ErrClosed
	}
	if sh := s.shared[uid]; sh != nil {
		return sh.name, nil
	}
	name := sharedName
	if uid != os.Geteuid() {
		name = "corrald-" + strconv.Itoa(uid) + ".sock"
	}
	path := s.socketDirPath(name)
	_ = os.Remove(path) // a node before this one left it
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return "", fmt.Errorf("cannot listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return "", fmt.Errorf("cannot secure %s: %w", path, err)
	}
	if uid != os.Geteuid() {
		// The child runs as someone else: the socket is its user's (and
		// root's), and the directory lets it through (0711: it cannot
		// list it).
		if err := os.Chown(path, uid, gid); err != nil {
			l.Close()
			return "", fmt.Errorf("cannot give %s to uid %d: %w", path, uid, err)
		}
		if err := os.Chmod(s.cfg.SocketDir, 0o711); err != nil {
			l.Close()
			return "", fmt.Errorf("cannot open %s to uid %d: %w", s.cfg.SocketDir, uid, err)
		}
	}
	sh := &sharedSocket{name: name, l: l}
	s.shared[uid] = sh
	s.wg.Go(func() { s.acceptShared(sh) })
	return name, nil
}

// closeShared stops listening on the shared sockets (their files go).
func (s *Supervisor) closeShared() {
	s.smu.Lock()
	s.sockClosed = true
	shared := s.shared
	s.shared = nil
	s.smu.Unlock()
	for _, sh := range shared {
		sh.l.Close()
	}
}

// acceptShared takes the connections of a shared unix socket: each is the
// process's whose tree its peer belongs to.
func (s *Supervisor) acceptShared(sh *sharedSocket) {
	for {
		nc, err := sh.l.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.log.Error("cannot accept child connection", "socket", sh.name, "err", err)
			}
			return
		}
		s.take(nc, nil)
	}
}

// acceptLoop takes the connections of a process's own tcp port.
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
		p.sup.take(nc, p)
	}
}

// take identifies a new connection (claimed: the process whose own port
// it came to, nil on a shared socket) and hands it to its process, or
// refuses it. It runs on the accept loop, so connections are admitted in
// the order they came.
func (s *Supervisor) take(nc net.Conn, claimed *process) {
	p, err := s.identify(nc, claimed)
	if err != nil {
		s.refuse(nc, err)
		return
	}
	p.mu.Lock()
	if !p.ready { // its start has not reported process.spawned yet: run admits it
		if len(p.early) < maxConnsPerProcess {
			p.early = append(p.early, nc)
			nc = nil
		}
		p.mu.Unlock()
		if nc != nil {
			nc.Close()
		}
		return
	}
	p.mu.Unlock()
	s.admit(p, nc)
}

// admit hands a connection to its process and starts reading it.
func (s *Supervisor) admit(p *process, nc net.Conn) {
	if c := p.admit(nc); c != nil {
		s.wg.Add(1)
		go c.readLoop()
	}
}

// identify finds the process nc belongs to.
func (s *Supervisor) identify(nc net.Conn, claimed *process) (*process, error) {
	pid, err := s.peerPID(nc, claimed)
	if err != nil {
		return nil, err
	}
	p := s.ownerOf(pid)
	switch {
	case p == nil && claimed != nil:
		return nil, fmt.Errorf("pid %d is not process %s (pid %d) or one of its descendants", pid, claimed.id, claimed.pid)
	case p == nil:
		return nil, fmt.Errorf("pid %d is not a process this node supervises or one of its descendants", pid)
	case claimed != nil && p != claimed:
		return nil, fmt.Errorf("pid %d belongs to process %s, not to %s", pid, p.id, claimed.id)
	}
	return p, nil
}

// maxAncestry bounds the walk from a peer up its parents.
const maxAncestry = 64

// ownerOf is the supervised process whose tree pid is in: the nearest
// ancestor (pid included) that is one, else the one that leads pid's
// process group. Nil when there is none.
func (s *Supervisor) ownerOf(pid int) *process {
	self, group := os.Getpid(), 0
	for i, cur := 0, pid; i < maxAncestry && cur > 1 && cur != self; i++ {
		if p := s.livePID(cur); p != nil {
			return p
		}
		info, err := procstat.Lookup(cur)
		if err != nil {
			break
		}
		if i == 0 {
			group = info.PGID
		}
		cur = info.PPID
	}
	if group > 1 {
		return s.livePID(group)
	}
	return nil
}

// livePID is the supervised process that runs as pid, if any.
func (s *Supervisor) livePID(pid int) *process {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.live[pid]
}

// refusals counts refused connections, to rate-limit their logging.
var refusals atomic.Uint64

// refuse tells a connection why it is refused, in one error line, and
// closes it.
func (s *Supervisor) refuse(nc net.Conn, why error) {
	if n := refusals.Add(1); n <= 10 || n%1000 == 0 {
		s.log.Warn("refused a connection that is not a child's", "err", why, "refused", n)
	}
	msg := "cannot accept this connection: " + why.Error() + " (only a process and its own descendants may connect to its socket)"
	_ = nc.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = nc.Write(wire.AppendError(nil, nil, wire.CodeForbidden, msg))
	nc.Close()
}

// admit adds a connection to the process: pending until it speaks. When
// all its places are taken, it takes the place of the oldest pending
// connection; when every one has spoken, it is closed.
func (p *process) admit(nc net.Conn) *conn {
	c := &conn{p: p, nc: nc, room: make(chan struct{}, 1), gone: make(chan struct{})}
	c.out = newOutbox(func() {
		p.sup.wg.Add(1)
		go c.writeLoop()
	}, func() { c.nc.Close() })
	var evicted *conn
	p.mu.Lock()
	if p.st.status().Finished() {
		p.mu.Unlock()
		nc.Close()
		return nil
	}
	if len(p.conns) >= maxConnsPerProcess {
		for other := range p.conns {
			if !other.established && (evicted == nil || other.seq < evicted.seq) {
				evicted = other
			}
		}
		if evicted == nil {
			p.mu.Unlock()
			nc.Close()
			p.sup.log.Warn("refused a connection: too many open on this socket", "process", p.id, "name", p.def.Name, "max", maxConnsPerProcess)
			return nil
		}
		delete(p.conns, evicted)
	}
	p.connSeq++
	c.seq = p.connSeq
	p.conns[c] = struct{}{}
	p.mu.Unlock()
	if evicted != nil {
		p.sup.log.Warn("closed a connection that never spoke to make room for a new one", "process", p.id, "name", p.def.Name)
		evicted.close()
	}
	return c
}

// spoken is called by handle for every valid line: the first ends the
// handshake and makes c the process's connection, where Send writes, before
// the line is acted on (and answered).
func (c *conn) spoken() {
	if c.spoke {
		return
	}
	c.spoke = true
	_ = c.nc.SetReadDeadline(time.Time{})
	p := c.p
	p.mu.Lock()
	if _, open := p.conns[c]; open {
		c.established = true
		p.latest = c
	}
	p.mu.Unlock()
}

func (c *conn) close() {
	c.closeOnce.Do(func() {
		close(c.gone)
		c.nc.Close()
		c.out.close()
	})
}

// readLoop reads lines until the connection ends.
func (c *conn) readLoop() {
	defer c.p.sup.wg.Done()
	defer c.detach()
	src := newConnReader(c.nc)
	var r *bufio.Reader // held only while there is something to read (connread.go)
	defer func() { src.release(r) }()
	max := c.p.sup.cfg.MaxLineBytes
	_ = c.nc.SetReadDeadline(time.Now().Add(c.p.sup.cfg.HandshakeTimeout))
	for {
		if r != nil && src.idle(r) {
			src.release(r)
			r = nil
		}
		var line []byte
		var err error
		if r == nil {
			r, err = src.take()
		}
		if err == nil {
			// No kept buffer for long lines either: a long line's is
			// dropped once it is handled.
			line, err = wire.ReadLine(r, max, nil)
		}
		switch {
		case errors.Is(err, wire.ErrLineTooLong):
			c.tooLong()
			continue
		case err != nil && !c.spoke && errors.Is(err, os.ErrDeadlineExceeded):
			c.p.sup.log.Warn("closed a connection that sent no valid line within the handshake timeout",
				"process", c.p.id, "name", c.p.def.Name, "timeout", c.p.sup.cfg.HandshakeTimeout)
			return
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
		c.handling.Store(true)
		c.handle(line)
		c.handling.Store(false)
		if c.out.wait() != nil {
			return
		}
	}
}

// awaitRoom waits while the connection has EventWindow events waiting for
// their answer (back-pressure on this child alone: its socket is not read
// meanwhile), and reports false if the connection closes first.
func (c *conn) awaitRoom() bool {
	window := int32(c.p.sup.cfg.EventWindow)
	if c.unanswered.Load() < window {
		return true
	}
	c.p.sup.log.Debug("child paused: its events wait for storage", "process", c.p.id, "name", c.p.def.Name, "waiting", window)
	for {
		c.wantRoom.Store(true)
		if c.unanswered.Load() < window {
			c.wantRoom.Store(false)
			return true
		}
		select {
		case <-c.room:
		case <-c.gone:
			c.wantRoom.Store(false)
			return false
		}
	}
}

// answered counts an event's answer in, and lets a read loop waiting for
// room go on.
func (c *conn) answered() {
	c.unanswered.Add(-1)
	if c.wantRoom.CompareAndSwap(true, false) {
		select {
		case c.room <- struct{}{}:
		default:
		}
	}
}

// readBufferSize is a connection's read buffer while it reads (an idle one
// holds none, connread.go): a read carries dozens of typical lines. Longer
// lines are assembled separately.
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
			if other.established && (p.latest == nil || other.seq > p.latest.seq) {
				p.latest = other
			}
		}
	}
	p.mu.Unlock()
}
