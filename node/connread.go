package node

import (
	"bufio"
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"unsafe"
)

// A connection holds a read buffer only while it has something to read.
//
// An idle child sends a line every few seconds, and a node has a thousand
// of them: a read loop blocked in Read on a buffer of its own would hold
// the buffer all that time (8 MiB for 1,000 children). So once a read
// loop has handled every line it was sent, it gives its bufio.Reader back
// to a pool and waits for the socket to become readable with no buffer
// at all: the runtime's poller calls back, the callback reads the first
// bytes into a chunk from a pool (or, when there are none yet, parks
// again), and only then does the loop take a reader, primed with that
// chunk. Nothing is allocated in the steady state, and an idle line costs
// no more system calls than a blocking Read (one read that finds nothing,
// one that finds the line).
//
// The loop gives its reader back only after a read that did not fill the
// buffer (short): the wait reads before it parks, so nothing would be
// lost otherwise, but in the middle of a burst that read would only go
// through a chunk and back into a reader.
// Connections that are not sockets (tests' pipes) keep a reader of their
// own.

var (
	readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, readBufferSize) }}
	chunkPool  = sync.Pool{New: func() any { b := make([]byte, readBufferSize); return &b }}
)

// connReader is the source of a connection's bufio.Reader: first the
// chunk the wait read, then the socket.
type connReader struct {
	nc    net.Conn
	rc    syscall.RawConn // nil: not a socket, the reader is never given back
	chunk *[]byte         // from chunkPool, while it holds unread bytes
	rest  []byte          // what is left of chunk
	short bool            // the last read did not fill its buffer: the socket was drained
}

func newConnReader(nc net.Conn) *connReader {
	cr := &connReader{nc: nc}
	if sc, ok := nc.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			cr.rc = rc
		}
	}
	return cr
}

func (cr *connReader) Read(p []byte) (int, error) {
	if cr.chunk != nil {
		n := copy(p, cr.rest)
		cr.rest = cr.rest[n:]
		if len(cr.rest) == 0 {
			chunkPool.Put(cr.chunk)
			cr.chunk, cr.rest = nil, nil
		}
		return n, nil
	}
	n, err := cr.nc.Read(p)
	cr.short = n < len(p)
	return n, err
}

// idle reports whether the loop may give its reader back: it holds no
// unread bytes, and the socket was drained by the last read.
func (cr *connReader) idle(r *bufio.Reader) bool {
	return cr.rc != nil && cr.chunk == nil && cr.short && r.Buffered() == 0
}

// take returns a reader once there is something to read: at once when
// the connection is not a socket, else after wait.
func (cr *connReader) take() (*bufio.Reader, error) {
	if cr.rc != nil {
		if err := cr.wait(); err != nil {
			return nil, err
		}
	}
	r := readerPool.Get().(*bufio.Reader)
	r.Reset(cr)
	return r, nil
}

// release gives r (may be nil) and any chunk back to their pools; what
// they held unread is dropped.
func (cr *connReader) release(r *bufio.Reader) {
	if r != nil {
		r.Reset(nil)
		readerPool.Put(r)
	}
	if cr.chunk != nil {
		chunkPool.Put(cr.chunk)
		cr.chunk, cr.rest = nil, nil
	}
}

// wait blocks, holding no buffer, until the socket has something to read
// (or has ended: the error, io.EOF at its end), and primes cr with it.
func (cr *connReader) wait() error {
	var rerr error
	err := cr.rc.Read(func(fd uintptr) bool {
		chunk := chunkPool.Get().(*[]byte)
		n, err := readFD(int(fd), *chunk)
		switch {
		case errors.Is(err, syscall.EAGAIN):
			chunkPool.Put(chunk)
			return false // nothing yet: the poller calls again when there is
		case err != nil:
			rerr = err
		case n == 0:
			rerr = io.EOF
		default:
			cr.chunk, cr.rest = chunk, (*chunk)[:n]
			cr.short = n < len(*chunk)
			return true
		}
		chunkPool.Put(chunk)
		return true
	})
	if err != nil {
		return err // closed, or the handshake deadline
	}
	return rerr
}

// readFD is a read of a socket that never blocks (recvfrom(2) with
// MSG_DONTWAIT, whatever the socket's mode), retried on EINTR. So it is a
// raw system call: the runtime's bookkeeping around a call that might
// block wakes its monitor thread from its sleep in a node at rest, twice
// per idle line.
func readFD(fd int, p []byte) (int, error) {
	for {
		n, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)),
			syscall.MSG_DONTWAIT, 0, 0)
		switch e {
		case 0:
			return int(n), nil
		case syscall.EINTR:
			continue
		}
		return 0, e
	}
}
