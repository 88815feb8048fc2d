package testchild

import (
	"bufio"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Ctrl is the test's side of proxy children: it accepts one connection per
// proxy child started with its Env.
type Ctrl struct {
	t     testing.TB
	path  string
	l     net.Listener
	peers chan *Peer
}

// ShortTempDir returns a fresh directory with a path short enough for Unix
// sockets (t.TempDir paths can exceed the 108-byte limit).
func ShortTempDir(t testing.TB) string {
	dir, err := os.MkdirTemp("", "ct")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// NewCtrl listens for proxy children.
func NewCtrl(t testing.TB) *Ctrl {
	path := filepath.Join(ShortTempDir(t), "ctrl.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	c := &Ctrl{t: t, path: path, l: l, peers: make(chan *Peer, 16)}
	go func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			c.peers <- &Peer{t: t, nc: nc, r: bufio.NewReader(nc)}
		}
	}()
	t.Cleanup(func() { l.Close() })
	return c
}

// Env is the environment that makes a child a proxy to this Ctrl.
func (c *Ctrl) Env() map[string]string {
	return map[string]string{EnvRole: RoleProxy, EnvCtrl: c.path}
}

// Accept waits for the next proxy child and its first line.
func (c *Ctrl) Accept() *Peer {
	c.t.Helper()
	select {
	case p := <-c.peers:
		c.t.Cleanup(func() { p.nc.Close() })
		fields := strings.Split(p.ReadLine(), "\t")
		for len(fields) < 4 {
			fields = append(fields, "")
		}
		p.ProcessID, p.Metadata, p.Address, p.Extra = fields[0], fields[1], fields[2], fields[3]
		return p
	case <-time.After(10 * time.Second):
		c.t.Fatal("no proxy child connected within 10s")
		return nil
	}
}

// Peer is one proxy child: lines written go to the node, lines read came
// from the node.
type Peer struct {
	t  testing.TB
	nc net.Conn
	r  *bufio.Reader
	// What the child saw in its environment.
	ProcessID, Metadata, Address, Extra string
}

// Send writes one line (a newline is added).
func (p *Peer) Send(line string) {
	p.t.Helper()
	if _, err := p.nc.Write([]byte(line + "\n")); err != nil {
		p.t.Fatalf("cannot write to proxy child: %v", err)
	}
}

// ReadLine returns the next line from the node, failing after 10 s.
func (p *Peer) ReadLine() string {
	p.t.Helper()
	return p.ReadLineWithin(10 * time.Second)
}

// ReadLineWithin is ReadLine waiting up to d: for a command that takes
// long (a benchmark's flood of a million events).
func (p *Peer) ReadLineWithin(d time.Duration) string {
	p.t.Helper()
	_ = p.nc.SetReadDeadline(time.Now().Add(d))
	line, err := p.r.ReadString('\n')
	if err != nil {
		p.t.Fatalf("no line from proxy child: %v", err)
	}
	return strings.TrimRight(line, "\n")
}

// NoLine asserts that nothing arrives within d (used only to check that a
// line without id gets no answer, after a later line's answer has already
// proven ordering).
func (p *Peer) NoLine(d time.Duration) {
	p.t.Helper()
	_ = p.nc.SetReadDeadline(time.Now().Add(d))
	if line, err := p.r.ReadString('\n'); err == nil {
		p.t.Fatalf("unexpected line from node: %s", line)
	}
}

// Close closes the test's side; the proxy child then exits 0.
func (p *Peer) Close() { p.nc.Close() }

// Read and Write make a Peer an io.ReadWriter, for tests that stream lines
// from goroutines of their own (Send and ReadLine fail the test, which
// only the test's goroutine may do). Read continues where ReadLine left off.
func (p *Peer) Read(b []byte) (int, error) { return p.r.Read(b) }

// Write writes raw bytes to the node (see Read).
func (p *Peer) Write(b []byte) (int, error) { return p.nc.Write(b) }

// WaitFile waits up to 10 s for a file a child writes and returns its
// contents. Children have no other channel to say they are ready, so this
// polls.
func WaitFile(t testing.TB, path string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(path); err == nil && len(b) > 0 {
			return string(b)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("%s did not appear within 10s", path)
	return ""
}
