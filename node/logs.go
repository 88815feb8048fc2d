package node

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// A child's stdout and stderr, and how they reach its log files.
//
// The child must survive a node restart (Detach, or kill -9 of corrald)
// and be re-adopted, so its output cannot go to a plain pipe read by the
// node: once the node is gone, the child's next write would raise SIGPIPE
// (or fail with EPIPE). Nor can it go straight to a file the node hands
// over, as it used to: the node cannot rotate a file another process
// writes without losing lines (copytruncate races the writer) or leaving
// the child writing to a renamed file for ever.
//
// So each process gets a FIFO, <LogDir>/<id>.fifo (mode 0600, in the
// node's own directory, its path derived from the id). The node opens it
// read-write and gives that descriptor to the child as stdout and stderr:
// the child itself always holds a reader, so no write ever raises SIGPIPE,
// and while no node reads, writes only block once 64 KiB are waiting (the
// pipe's buffer). The node reads the FIFO through the runtime's poller
// (O_RDONLY|O_NONBLOCK, one goroutine per process, owned by the
// supervisor and waited for) and writes <id>.log itself, rotating it at a
// line boundary once it would exceed the process's log_max_bytes:
// <id>.log becomes <id>.log.1, and so on up to log_max_files files in all.
// A line is split only when it is longer than the room a whole file has,
// or was already begun in the file being rotated. A re-adopting node
// reopens the FIFO and appends to <id>.log where the last node stopped.
//
// Cost: the read buffer (64 KiB) is borrowed from a pool while output
// flows and returned when the pipe is empty, so an idle child costs no
// memory; the log file is opened at the first output, not at the spawn
// (a spawn that never started leaves no file), and closed after logIdle
// without output, so an idle child costs the node one descriptor, its
// FIFO's. Reading and writing allocate nothing per read.
//
// What the node writes to the log it also hands to a follower, when the
// process has one (follow.go); while it has none, that costs one atomic
// load. The pipe dates its output roughly, for "the lines written since"
// (logtail.go).
//
// The FIFO goes when the process ends; the log files stay with its record
// and go when the record is pruned (retention.go).

// Defaults of Config.LogMaxBytes and Config.LogMaxFiles.
const (
	DefaultLogMaxBytes = 10 << 20
	DefaultLogMaxFiles = 3
	// MinLogMaxBytes is the smallest log_max_bytes: a file must hold lines.
	MinLogMaxBytes = 1 << 10
)

// logIdle is how long a log file stays open with nothing to write.
const logIdle = 2 * time.Second

// logReadSize is the buffer a FIFO is read with; a line longer than that
// is written in pieces.
const logReadSize = 64 << 10

var logBuffers = sync.Pool{New: func() any { return new([logReadSize]byte) }}

// logPaths are where a process's output goes, derived from its id.
func (s *Supervisor) fifoPath(id string) string { return filepath.Join(s.cfg.LogDir, id+".fifo") }
func (s *Supervisor) logPath(id string) string  { return filepath.Join(s.cfg.LogDir, id+".log") }

// legacyLogPath is where nodes before the FIFO (record version 1) had a
// child write its output itself: a child such a node spawned goes on
// writing there after an upgrade.
func (s *Supervisor) legacyLogPath(name, id string) string {
	return filepath.Join(s.cfg.LogDir, name+"-"+id+".log")
}

// rotated is the path of the n-th older log file of base (n > 0).
func rotated(base string, n int) string { return base + "." + strconv.Itoa(n) }

// logLimits are a process's log_max_bytes and log_max_files.
type logLimits struct {
	maxBytes int64
	maxFiles int
}

// limitsFor is the log limits of def, the node's where it sets none.
func (s *Supervisor) limitsFor(def *definition) logLimits {
	l := logLimits{maxBytes: def.LogMaxBytes, maxFiles: def.LogMaxFiles}
	if l.maxBytes <= 0 {
		l.maxBytes = s.cfg.LogMaxBytes
	}
	if l.maxFiles <= 0 {
		l.maxFiles = s.cfg.LogMaxFiles
	}
	return l
}

// logPipe carries one process's output from its FIFO to its log files,
// and to its follower if it has one (follow.go). Everything but stopping,
// r, done, epoch, tap, asked and the fields under askMu belongs to the
// reading goroutine (pos and marks too, until done is closed).
type logPipe struct {
	p     *process
	r     *os.File // the FIFO, O_RDONLY|O_NONBLOCK, in the poller
	raw   syscall.RawConn
	out   logFile
	done  chan struct{} // closed when the goroutine has ended
	epoch int64         // when it began (UnixNano): what its offsets count from

	stopping atomic.Bool
	tap      atomic.Pointer[logTap] // the follower's sink; nil while nobody follows
	asked    atomic.Bool            // asks wait: wake up and answer them

	askMu sync.Mutex
	asks  []*tailAsk // tails asked for (follow.go)
	ended bool       // the goroutine is ending: no more asks

	pos   int64    // bytes written to the log so far (the next one's offset)
	marks logMarks // when they were written (logtail.go)

	readFn   func(fd uintptr) bool // readSome, bound once
	buf      *[logReadSize]byte    // nil while idle with nothing held
	held     int                   // bytes of an unfinished line at the start of buf
	n        int                   // what the last read returned ...
	rerr     error                 // ... and its error
	lastData time.Time
	idleSet  bool // a deadline is armed to close the idle log file
}

// makeFIFO creates p's FIFO and opens both its ends: the node's reading
// end, and a read-write end for the child's stdout and stderr, which the
// caller closes once the child has its copy.
func (s *Supervisor) makeFIFO(p *process) (lp *logPipe, childEnd int, err error) {
	path := s.fifoPath(p.id)
	_ = os.Remove(path)
	if err := unix.Mkfifo(path, 0o600); err != nil {
		return nil, -1, fmt.Errorf("cannot create the pipe for its output: %w", err)
	}
	lp, err = s.openFIFO(p)
	if err != nil {
		_ = os.Remove(path)
		return nil, -1, err
	}
	childEnd, err = syscall.Open(path, syscall.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		lp.r.Close()
		_ = os.Remove(path)
		return nil, -1, fmt.Errorf("cannot open the pipe for its output: %w", err)
	}
	return lp, childEnd, nil
}

// openFIFO opens the reading end of p's FIFO (made at its spawn, or by the
// node before this one).
func (s *Supervisor) openFIFO(p *process) (*logPipe, error) {
	r, err := os.OpenFile(s.fifoPath(p.id), os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("cannot open the pipe of its output: %w", err)
	}
	if fi, err := r.Stat(); err != nil || fi.Mode()&fs.ModeNamedPipe == 0 {
		r.Close()
		return nil, fmt.Errorf("cannot open the pipe of its output: %s is not a FIFO", s.fifoPath(p.id))
	}
	raw, err := r.SyscallConn()
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("cannot open the pipe of its output: %w", err)
	}
	lp := &logPipe{p: p, r: r, raw: raw, done: make(chan struct{}), out: newLogFile(s.logPath(p.id), p.logLimits),
		epoch: time.Now().UnixNano()}
	lp.out.report = func(err error) {
		s.log.Error("cannot write process log; its output is dropped until a write succeeds", "process", p.id, "name", p.def.Name, "err", err)
	}
	lp.readFn = lp.readSome
	return lp, nil
}

// closeUnstarted closes a pipe whose goroutine never ran, and removes the
// FIFO.
func (lp *logPipe) closeUnstarted() {
	lp.r.Close()
	_ = os.Remove(lp.p.sup.fifoPath(lp.p.id))
}

// run copies the FIFO to the log files until every writer has closed it
// (the child and what it started are gone) or stop is called.
func (lp *logPipe) run() {
	defer lp.end()
	for {
		lp.n, lp.rerr = 0, nil
		err := lp.raw.Read(lp.readFn)
		if err == nil && lp.n > 0 {
			lp.consume(lp.n) // what was read is written, whatever comes next
		}
		switch {
		case lp.stopping.Load():
			lp.drain()
			return
		case errors.Is(err, os.ErrDeadlineExceeded):
			if lp.asked.Swap(false) {
				lp.answer(true)
			}
			lp.idle() // the deadline it needs now
		case err != nil, lp.rerr != nil, lp.n == 0:
			return // closed, failed, or EOF: no writer left
		}
	}
}

// readSome is the raw read: it borrows a buffer while there is output,
// and gives it back, when nothing is held, before waiting for more.
func (lp *logPipe) readSome(fd uintptr) bool {
	if lp.buf == nil {
		lp.buf = logBuffers.Get().(*[logReadSize]byte)
	}
	for {
		n, err := syscall.Read(int(fd), lp.buf[lp.held:])
		switch err {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			if lp.held == 0 {
				logBuffers.Put(lp.buf)
				lp.buf = nil
			}
			return false // wait for the poller
		}
		lp.n, lp.rerr = max(n, 0), err
		return true
	}
}

// consume writes the complete lines of what was read (all of it when the
// buffer is full without a newline) and keeps the rest for the next read.
func (lp *logPipe) consume(n int) {
	total := lp.held + n
	data := lp.buf[:total]
	end := bytes.LastIndexByte(data, '\n') + 1
	if end == 0 && total == len(lp.buf) {
		end = total
	}
	now := time.Now()
	if end > 0 {
		lp.put(data[:end], now)
		lp.held = copy(lp.buf[:], data[end:])
	} else {
		lp.held = total
	}
	lp.lastData = now
	if lp.out.f != nil && !lp.idleSet {
		lp.idleSet = true
		lp.setDeadline(lp.lastData.Add(logIdle))
	}
}

// put writes b to the log, and hands it to the follower if there is one:
// while nobody follows, that costs one atomic load.
func (lp *logPipe) put(b []byte, now time.Time) {
	lp.marks.note(lp.pos, now.Unix())
	lp.out.write(b)
	if t := lp.tap.Load(); t != nil {
		t.sink.LogOutput(b, lp.epoch, lp.pos)
	}
	lp.pos += int64(len(b))
}

// idle is the idle deadline passing: close the log file if nothing came
// since, else look again later.
func (lp *logPipe) idle() {
	if since := time.Since(lp.lastData); since < logIdle {
		lp.setDeadline(lp.lastData.Add(logIdle))
		return
	}
	lp.out.close()
	lp.idleSet = false
	lp.setDeadline(time.Time{})
}

// setDeadline sets the read deadline, unless a stop asked to end or a
// tail was asked for: their own deadline (in the past) must win.
func (lp *logPipe) setDeadline(t time.Time) {
	_ = lp.r.SetReadDeadline(t)
	if lp.stopping.Load() || lp.asked.Load() {
		_ = lp.r.SetReadDeadline(time.Unix(1, 0))
	}
}

// maxDrainReads bounds the reads of a drain, so that a group member still
// writing cannot hold it.
const maxDrainReads = 16

// drain reads what waits in the FIFO, without waiting for more.
func (lp *logPipe) drain() {
	_ = lp.raw.Control(func(fd uintptr) {
		for range maxDrainReads {
			if lp.buf == nil {
				lp.buf = logBuffers.Get().(*[logReadSize]byte)
			}
			n, err := syscall.Read(int(fd), lp.buf[lp.held:])
			if err == syscall.EINTR {
				continue
			}
			if err != nil || n <= 0 {
				return
			}
			lp.consume(n)
		}
	})
}

// end writes an unfinished last line, answers the tails asked for (from
// the files, which hold everything now) and lets go of everything.
func (lp *logPipe) end() {
	if lp.held > 0 {
		lp.put(lp.buf[:lp.held], time.Now())
		lp.held = 0
	}
	lp.answer(false)
	if lp.buf != nil {
		logBuffers.Put(lp.buf)
		lp.buf = nil
	}
	lp.out.close()
	lp.r.Close()
	close(lp.done)
}

// stop makes the goroutine write what waits in the FIFO and end, and
// waits for it. The FIFO stays: the child may still hold it (Detach).
func (lp *logPipe) stop() {
	if !lp.stopping.Swap(true) {
		_ = lp.r.SetReadDeadline(time.Unix(1, 0))
	}
	<-lp.done
}

// logFile is a process's current log file and its rotation.
type logFile struct {
	names   []string // <id>.log, <id>.log.1, …: log_max_files in all
	limits  logLimits
	f       *os.File // nil until the first output, and while idle
	size    int64
	midLine bool // the file does not end with a newline
	failed  bool // the last open or write failed (reported once)
	report  func(error)
}

func newLogFile(path string, l logLimits) logFile {
	names := make([]string, l.maxFiles)
	names[0] = path
	for i := 1; i < len(names); i++ {
		names[i] = rotated(path, i)
	}
	return logFile{names: names, limits: l}
}

// write appends b, rotating first whenever it would not fit.
func (w *logFile) write(b []byte) {
	for len(b) > 0 {
		if w.f == nil && !w.open() {
			return // dropped: the disk refuses, and the child must not block
		}
		room := w.limits.maxBytes - w.size
		if int64(len(b)) <= room {
			w.put(b)
			return
		}
		cut := -1
		if room > 0 {
			cut = bytes.LastIndexByte(b[:room], '\n')
		}
		switch {
		case cut >= 0: // the lines that fit
			w.put(b[:cut+1])
			b = b[cut+1:]
		case w.size > 0 && !w.midLine: // the next line begins the next file
		case room > 0: // longer than a whole file, or begun here: cut at the limit
			w.put(b[:room])
			b = b[room:]
		}
		if !w.rotate() {
			return // the rest is dropped: the current file stays full, and the child must not block
		}
	}
}

func (w *logFile) put(b []byte) {
	n, err := w.f.Write(b)
	w.size += int64(n)
	if n > 0 {
		w.midLine = b[n-1] != '\n'
	}
	if err != nil {
		w.fail(err)
		w.close()
		return
	}
	w.failed = false // a failure is reported once, until a write succeeds again
}

// open opens (or creates) the current file, appending.
func (w *logFile) open() bool {
	f, err := os.OpenFile(w.names[0], os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		w.fail(err)
		return false
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		w.fail(err)
		return false
	}
	w.f, w.size, w.midLine = f, fi.Size(), false
	if w.size > 0 { // a file written before (the last node's, or before an idle close)
		var last [1]byte
		if _, err := f.ReadAt(last[:], w.size-1); err == nil {
			w.midLine = last[0] != '\n'
		}
	}
	return true
}

// rotate shifts the files by one (the oldest goes) and starts an empty
// current file; with log_max_files = 1 the current file is emptied. It
// reports whether the current file was moved or emptied: if not, it is as
// full as before.
func (w *logFile) rotate() bool {
	w.close()
	if len(w.names) == 1 {
		if err := os.Truncate(w.names[0], 0); err != nil && !errors.Is(err, fs.ErrNotExist) {
			w.fail(err)
			return false
		}
		return true
	}
	ok := true
	for i := len(w.names) - 1; i > 0; i-- {
		if err := os.Rename(w.names[i-1], w.names[i]); err != nil && !errors.Is(err, fs.ErrNotExist) {
			w.fail(err)
			if i == 1 { // only the current file's move matters for the next write
				ok = false
			}
		}
	}
	return ok
}

func (w *logFile) close() {
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
}

func (w *logFile) fail(err error) {
	if !w.failed && w.report != nil {
		w.report(err)
	}
	w.failed = true
}

// removeLogs deletes a process's log files and FIFO (its record is being
// pruned).
func (s *Supervisor) removeLogs(p *process) {
	if s.cfg.LogDir == "" {
		return
	}
	id, l := p.id, p.logLimits
	if p.legacyLog {
		_ = os.Remove(s.legacyLogPath(p.def.Name, id))
	}
	_ = os.Remove(s.fifoPath(id))
	base := s.logPath(id)
	_ = os.Remove(base)
	// Older files up to the process's log_max_files, and beyond while they
	// exist (the limit may have been higher when they were written).
	for i := 1; ; i++ {
		if err := os.Remove(rotated(base, i)); errors.Is(err, fs.ErrNotExist) && i >= l.maxFiles {
			return
		}
	}
}
