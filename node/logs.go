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
// So each process gets a pipe that the child also reads: the node makes a
// pipe, opens its write end again read-write through /proc/self/fd (which
// opens a pipe as a FIFO is opened, a reader and a writer), and gives that
// descriptor to the child as stdout and stderr. The child itself always
// holds a reader, so no write ever raises SIGPIPE, and while no node
// reads, writes only block once 64 KiB are waiting (the pipe's buffer).
// The pipe has no name, so it costs the file system nothing (makePipe).
// The node reads it through the runtime's poller (O_RDONLY|O_NONBLOCK,
// one goroutine per process, owned by the supervisor and waited for) and
// writes <id>.log itself, rotating it at a line boundary once it would
// exceed the process's log_max_bytes: <id>.log becomes <id>.log.1, and so
// on up to log_max_files files in all. A line is split only when it is
// longer than the room a whole file has, or was already begun in the file
// being rotated. A re-adopting node opens the pipe again from the child's
// descriptors (/proc/<pid>/fd: stdout, stderr, or wherever the child moved
// it, told by the pipe's inode number in the record; openChildPipe) and
// appends to <id>.log where the last node stopped (reading a process's
// descriptors takes what ptrace would: root, or the child's own user while
// the child is dumpable). A child that kept no end of its pipe, or whose
// descriptors the node may not read, runs on, supervised, with its output
// unread, and the node says so. A process
// spawned by a node before pipes has a FIFO, <LogDir>/<id>.fifo, which the
// next node reads instead, and removes once the process has ended.
//
// Cost: the read buffer (64 KiB) is borrowed from a pool while output
// flows and returned when the pipe is empty, so an idle child costs no
// memory; the log file is opened at the first output, not at the spawn
// (a spawn that never started leaves no file), and closed after logIdle
// without output, so an idle child costs the node one descriptor, its
// pipe's. Reading and writing allocate nothing per read.
//
// What the node writes to the log it also hands to a follower, when the
// process has one (follow.go); while it has none, that costs one atomic
// load. The pipe dates its output roughly, for "the lines written since"
// (logtail.go).
//
// The log files stay with the record of an ended process and go when the
// record is pruned (retention.go).

// Defaults of Config.LogMaxBytes and Config.LogMaxFiles.
const (
	DefaultLogMaxBytes = 10 << 20
	DefaultLogMaxFiles = 3
	// MinLogMaxBytes is the smallest log_max_bytes: a file must hold lines.
	MinLogMaxBytes = 1 << 10
)

// logIdle is how long a log file stays open with nothing to write.
const logIdle = 2 * time.Second

// logReadSize is the buffer a pipe is read with; a line longer than that
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

// logPipe carries one process's output from its pipe to its log files,
// and to its follower if it has one (follow.go). Everything but stopping,
// r, done, epoch, tap, asked and the fields under askMu belongs to the
// reading goroutine (pos and marks too, until done is closed).
type logPipe struct {
	p     *process
	r     *os.File // the pipe (or FIFO), O_RDONLY|O_NONBLOCK, in the poller
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

// makePipe makes p's output pipe and opens both its ends: the node's
// reading end, and a read-write end for the child's stdout and stderr,
// which the caller closes once the child has its copy. The pipe has no
// name: the read-write end is the write end opened again through
// /proc/self/fd, which makes it a reader and a writer of the pipe, as a
// FIFO opened read-write is. It costs the file system nothing, where a
// FIFO was a new inode at every spawn: on an ext4 that has freed many
// lately, making it took a third of a spawn (ext4 steps over recently
// freed inodes). The pipe's inode number goes in p's record, for the next
// node to find the pipe again (openChildPipe).
func (s *Supervisor) makePipe(p *process) (lp *logPipe, childEnd int, err error) {
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return nil, -1, fmt.Errorf("cannot create the pipe for its output: %w", err)
	}
	childEnd, err = unix.Open("/proc/self/fd/"+strconv.Itoa(fds[1]), unix.O_RDWR|unix.O_CLOEXEC, 0)
	unix.Close(fds[1])
	if err != nil {
		unix.Close(fds[0])
		return nil, -1, fmt.Errorf("cannot open the pipe for its output: %w", err)
	}
	r := os.NewFile(uintptr(fds[0]), "pipe")
	var st unix.Stat_t
	if err := unix.Fstat(fds[0], &st); err != nil {
		r.Close()
		unix.Close(childEnd)
		return nil, -1, fmt.Errorf("cannot open the pipe for its output: %w", err)
	}
	if lp, err = s.newLogPipe(p, r); err != nil {
		unix.Close(childEnd)
		return nil, -1, err
	}
	p.pipeIno = st.Ino
	return lp, childEnd, nil
}

// openOutput opens the reading end of the output of p, re-adopted: its
// pipe, found through the child's descriptors (openChildPipe), or the
// FIFO <id>.fifo of a process spawned by a node before pipes.
func (s *Supervisor) openOutput(p *process) (*logPipe, error) {
	if p.pipeIno != 0 {
		r, err := openChildPipe(p.pid, p.pipeIno)
		if err != nil {
			return nil, err
		}
		return s.newLogPipe(p, r)
	}
	r, err := os.OpenFile(s.fifoPath(p.id), os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("cannot open the pipe of its output: %w", err)
	}
	if fi, err := r.Stat(); err != nil || fi.Mode()&fs.ModeNamedPipe == 0 {
		r.Close()
		return nil, fmt.Errorf("cannot open the pipe of its output: %s is not a FIFO", s.fifoPath(p.id))
	}
	return s.newLogPipe(p, r)
}

// maxChildFDs bounds the descriptors of a child openChildPipe looks at.
const maxChildFDs = 1024

// openChildPipe opens, for reading and without blocking, the pipe of inode
// ino that process pid holds: as its stdout or stderr, where the node put
// it, or as another of its descriptors (a child may have moved it). It is
// the pipe whatever pid has become since it was checked: no other process
// can hold that pipe but the child and what it started.
func openChildPipe(pid int, ino uint64) (*os.File, error) {
	dir := "/proc/" + strconv.Itoa(pid) + "/fd/"
	try := func(name string) *os.File {
		fd, err := unix.Open(dir+name, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil
		}
		var st unix.Stat_t
		if unix.Fstat(fd, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO || st.Ino != ino {
			unix.Close(fd)
			return nil
		}
		return os.NewFile(uintptr(fd), "pipe")
	}
	if f := try("1"); f != nil {
		return f, nil
	}
	if f := try("2"); f != nil {
		return f, nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("cannot open the pipe of its output: %w", err)
	}
	names, _ := d.Readdirnames(maxChildFDs)
	d.Close()
	want := "pipe:[" + strconv.FormatUint(ino, 10) + "]"
	for _, name := range names {
		if target, err := os.Readlink(dir + name); err == nil && target == want {
			if f := try(name); f != nil {
				return f, nil
			}
		}
	}
	return nil, fmt.Errorf("cannot open the pipe of its output: process %d no longer holds it", pid)
}

// newLogPipe makes the logPipe of p that reads r, a pipe or a FIFO opened
// without blocking.
func (s *Supervisor) newLogPipe(p *process, r *os.File) (*logPipe, error) {
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

// closeUnstarted closes a pipe whose goroutine never ran.
func (lp *logPipe) closeUnstarted() {
	lp.r.Close()
}

// run copies the pipe to the log files until every writer has closed it
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

// drain reads what waits in the pipe, without waiting for more.
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

// stop makes the goroutine write what waits in the pipe and end, and
// waits for it. The pipe stays: the child may still hold it (Detach).
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

// removeLogs deletes a process's log files, and its FIFO if it has one
// (its record is being pruned).
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
