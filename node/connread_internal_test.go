package node

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/corral-run/corral/client/wire"
)

// socketPair is a connected pair of unix sockets, closed when the test ends.
func socketPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	conns := make([]net.Conn, 2)
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "socketpair")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		conns[i] = c
	}
	return conns[0], conns[1]
}

// A read loop holds a reader only while there is something to read: lines
// cut anywhere, a burst bigger than the buffer, and long lines all come
// through whole, and once the socket is drained the reader goes back.
func TestConnReaderHoldsNoBufferWhenIdle(t *testing.T) {
	nc, child := socketPair(t)
	src := newConnReader(nc)
	if src.rc == nil {
		t.Fatal("a unix socket has no raw conn")
	}
	lines := make(chan string)
	idle := make(chan bool)
	errs := make(chan error, 1)
	go func() {
		var r *bufio.Reader
		defer func() { src.release(r) }()
		for {
			if r != nil && src.idle(r) {
				src.release(r)
				r = nil
			}
			var err error
			if r == nil {
				if r, err = src.take(); err != nil {
					errs <- err
					return
				}
			}
			line, err := wire.ReadLine(r, 1<<20, nil)
			if err != nil {
				errs <- err
				return
			}
			lines <- string(line)
			idle <- src.idle(r)
		}
	}()
	expect := func(want string, wantIdle bool) {
		t.Helper()
		select {
		case got := <-lines:
			if got != want {
				t.Fatalf("line %.40q…, want %.40q…", got, want)
			}
		case err := <-errs:
			t.Fatalf("read loop ended: %v", err)
		case <-time.After(10 * time.Second):
			t.Fatalf("no line %.40q…", want)
		}
		if got := <-idle; got != wantIdle {
			t.Fatalf("after %.40q…: idle %v, want %v", want, got, wantIdle)
		}
	}
	write := func(s string) {
		t.Helper()
		if _, err := io.WriteString(child, s); err != nil {
			t.Fatal(err)
		}
	}

	write(`{"type":"heartbeat"}` + "\n")
	expect(`{"type":"heartbeat"}`, true)

	// A line cut in two: the loop waits for the rest holding the first part.
	write(`{"type":`)
	time.Sleep(10 * time.Millisecond) // let the first part arrive alone
	write(`"connected"}` + "\n")
	expect(`{"type":"connected"}`, true)

	// A burst of three buffers' worth of lines, written at once.
	line := strings.Repeat("x", 99)
	var burst bytes.Buffer
	n := 3 * readBufferSize / 100
	for range n {
		burst.WriteString(line + "\n")
	}
	write(burst.String())
	for i := range n {
		select {
		case got := <-lines:
			if got != line {
				t.Fatalf("burst line %d: %.20q…", i, got)
			}
			<-idle
		case err := <-errs:
			t.Fatalf("read loop ended: %v", err)
		case <-time.After(10 * time.Second):
			t.Fatalf("burst line %d missing", i)
		}
	}

	// A line longer than the buffer.
	long := strings.Repeat("y", 3*readBufferSize)
	go func() { _, _ = io.WriteString(child, long+"\n") }()
	expect(long, true)

	child.Close()
	select {
	case err := <-errs:
		if !errors.Is(err, io.EOF) {
			t.Errorf("at the end: %v, want EOF", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the loop did not see the end")
	}
	if src.chunk != nil {
		t.Error("a chunk is still held")
	}
}

// A connection that says nothing is still closed by the handshake
// deadline while it waits without a buffer, and a closed connection ends
// the wait.
func TestConnReaderWaitEnds(t *testing.T) {
	nc, _ := socketPair(t)
	src := newConnReader(nc)
	_ = nc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := src.take(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("past the deadline: %v, want a deadline error", err)
	}
	_ = nc.SetReadDeadline(time.Time{})
	go func() {
		time.Sleep(20 * time.Millisecond)
		nc.Close()
	}()
	if _, err := src.take(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("closed: %v, want net.ErrClosed", err)
	}
}
