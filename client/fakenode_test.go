package client

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/corral-run/corral/client/wire"
)

// waitFor bounds every wait in the tests.
const waitFor = 5 * time.Second

// fakeNode listens like a node's per-process socket and hands each accepted
// connection to the test. It can be stopped, as when the node goes away,
// and started again on the same address, as a restarted node does.
type fakeNode struct {
	network string
	addr    string // the listening address: a socket path or host:port
	conns   chan *fakeConn
	autoAck atomic.Bool // new connections ack every line with an id
	wg      sync.WaitGroup

	mu   sync.Mutex
	ln   net.Listener // nil while stopped
	live []*fakeConn  // accepted since the last start
}

func newUnixNode(t testing.TB) *fakeNode {
	t.Helper()
	path := filepath.Join(t.TempDir(), "p.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	return startNode(t, ln, "unix")
}

func newTCPNode(t testing.TB) *fakeNode {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return startNode(t, ln, "tcp")
}

func startNode(t testing.TB, ln net.Listener, network string) *fakeNode {
	n := &fakeNode{network: network, addr: ln.Addr().String(), conns: make(chan *fakeConn, 16)}
	n.serve(ln)
	t.Cleanup(func() {
		n.stop()
		n.wg.Wait()
	})
	return n
}

// serve accepts connections on ln until it is closed.
func (n *fakeNode) serve(ln net.Listener) {
	n.mu.Lock()
	n.ln = ln
	n.mu.Unlock()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			fc := &fakeConn{conn: conn, lines: make(chan fakeLine, 1<<16), eof: make(chan struct{}), autoAck: n.autoAck.Load()}
			n.mu.Lock()
			if n.ln != ln { // stopped meanwhile
				n.mu.Unlock()
				conn.Close()
				continue
			}
			n.live = append(n.live, fc)
			n.mu.Unlock()
			n.wg.Add(1)
			go func() {
				defer n.wg.Done()
				fc.readLoop()
			}()
			n.conns <- fc
		}
	}()
}

// stop closes the listener (a Unix one removes its socket file, so the
// client's dials fail) and every connection, without answering anything
// still unanswered, and drops connections the test has not accepted.
func (n *fakeNode) stop() {
	n.mu.Lock()
	if n.ln != nil {
		n.ln.Close()
		n.ln = nil
	}
	for _, fc := range n.live {
		fc.conn.Close()
	}
	n.live = nil
	n.mu.Unlock()
	for {
		select {
		case <-n.conns:
			continue
		default:
		}
		return
	}
}

// restart listens again on the address the node had.
func (n *fakeNode) restart(t testing.TB) {
	t.Helper()
	ln, err := net.Listen(n.network, n.addr)
	if err != nil {
		t.Fatalf("cannot listen again on %s: %v", n.addr, err)
	}
	n.serve(ln)
}

// config is a client Config for this node.
func (n *fakeNode) config(pid string) Config {
	if n.network == "unix" {
		return Config{ProcessID: pid, SocketPath: n.addr}
	}
	_, port, _ := net.SplitHostPort(n.addr)
	p, _ := strconv.Atoi(port)
	return Config{ProcessID: pid, TCPPort: p}
}

// setEnv puts the node's address in the environment, as corrald would.
func (n *fakeNode) setEnv(t *testing.T, pid, metadata string) {
	t.Helper()
	cfg := n.config(pid)
	setenv(t, wire.EnvProcessID, pid)
	setenv(t, wire.EnvSocketPath, cfg.SocketPath)
	port := ""
	if cfg.TCPPort != 0 {
		port = strconv.Itoa(cfg.TCPPort)
	}
	setenv(t, wire.EnvTCPPort, port)
	setenv(t, wire.EnvMetadata, metadata)
}

// setenv sets key for the test; an empty value unsets it.
func setenv(t *testing.T, key, value string) {
	t.Setenv(key, value)
	if value == "" {
		os.Unsetenv(key)
	}
}

// accept waits for the next connection.
func (n *fakeNode) accept(t *testing.T) *fakeConn {
	t.Helper()
	select {
	case fc := <-n.conns:
		t.Cleanup(func() { fc.conn.Close() })
		return fc
	case <-time.After(waitFor):
		t.Fatal("no connection from the client")
		return nil
	}
}

// fakeConn is one client connection as the node sees it.
type fakeConn struct {
	conn    net.Conn
	lines   chan fakeLine
	eof     chan struct{} // closed when the client's side ended
	autoAck bool
	wmu     sync.Mutex
}

type fakeLine struct {
	raw []byte
	m   map[string]any
}

func (l fakeLine) typ() string { s, _ := l.m["type"].(string); return s }

// id is the line's id as text ("" when absent).
func (l fakeLine) id() string {
	var probe struct {
		ID json.RawMessage `json:"id"`
	}
	json.Unmarshal(l.raw, &probe)
	return string(probe.ID)
}

// readLoop reads the client's lines until it closes its side, then closes
// the connection, as the node does.
func (fc *fakeConn) readLoop() {
	defer close(fc.eof)
	defer fc.conn.Close()
	r := bufio.NewReaderSize(fc.conn, 1<<20)
	for {
		raw, err := r.ReadBytes('\n')
		if err != nil {
			return
		}
		raw = bytes.TrimSuffix(raw, []byte("\n"))
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			m = map[string]any{"_invalid": err.Error()}
		}
		l := fakeLine{raw: raw, m: m}
		if fc.autoAck {
			if id := l.id(); id != "" {
				fc.writeRaw(wire.AppendAck(nil, json.RawMessage(id)))
			}
		}
		fc.lines <- l
	}
}

// next returns the next line the client sent.
func (fc *fakeConn) next(t *testing.T) fakeLine {
	t.Helper()
	select {
	case l := <-fc.lines:
		return l
	case <-time.After(waitFor):
		t.Fatal("no line from the client")
		return fakeLine{}
	}
}

// nextOf returns the next line of type typ, skipping heartbeats and stats
// (unless asked for).
func (fc *fakeConn) nextOf(t *testing.T, typ string) fakeLine {
	t.Helper()
	deadline := time.After(waitFor)
	for {
		select {
		case l := <-fc.lines:
			if l.typ() == typ {
				return l
			}
			if l.typ() != wire.TypeHeartbeat && l.typ() != wire.TypeStats {
				t.Fatalf("want a %s line, got %s", typ, l.raw)
			}
		case <-deadline:
			t.Fatalf("no %s line from the client", typ)
		}
	}
}

// waitEOF waits for the client to close its side.
func (fc *fakeConn) waitEOF(t *testing.T) {
	t.Helper()
	select {
	case <-fc.eof:
	case <-time.After(waitFor):
		t.Fatal("the client did not close the connection")
	}
}

func (fc *fakeConn) write(t *testing.T, line string) {
	t.Helper()
	if err := fc.writeRaw([]byte(line + "\n")); err != nil {
		t.Fatal(err)
	}
}

func (fc *fakeConn) writeRaw(b []byte) error {
	fc.wmu.Lock()
	defer fc.wmu.Unlock()
	_, err := fc.conn.Write(b)
	return err
}

// serveAckAll is a lean node for benchmarks: it acks every line that
// carries an id, flushing whenever it has caught up with the socket, and
// counts events. It returns when the client closes the connection.
func serveAckAll(conn net.Conn, events *atomic.Int64) error {
	defer conn.Close()
	r := bufio.NewReaderSize(conn, 64<<10)
	w := bufio.NewWriterSize(conn, 64<<10)
	idKey := []byte(`,"id":`)
	eventType := []byte(`{"type":"event"`)
	var n int64
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			events.Add(n)
			w.Flush()
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if bytes.HasPrefix(line, eventType) {
			n++
		}
		if i := bytes.LastIndex(line, idKey); i >= 0 {
			id := line[i+len(idKey) : len(line)-2] // up to `}\n`
			w.Write(wire.AppendAck(w.AvailableBuffer(), id))
		}
		if r.Buffered() == 0 {
			events.Add(n)
			n = 0
			if err := w.Flush(); err != nil {
				return err
			}
		}
	}
}
