package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"
	"time"

	"github.com/corral-run/corral/api"
)

// Reading the end of a process's log: its last lines, or what it wrote
// within a while.
//
// How the node knows when a line was written. The log files hold the
// output as the child wrote it, without times, and the node does not add
// any (the files are the child's output, byte for byte). What it knows:
//
//   - While it reads a process's output, its pipe notes marks (logMarks):
//     where each second's output begins, and the time of its last write,
//     at most 64 of them; when they fill up, they are merged two by two
//     and begin half as often, so an hour of a busy process's output is
//     dated to within two minutes.
//   - Before that (a process re-adopted from an earlier node, or one that
//     ended before this node started), only the files' modification
//     times: a file last written before the cutoff is left out whole,
//     a later one is kept whole.
//
// So "since D" keeps every line written within D, and may keep some
// written a little before (the rest of a mark's stretch, or of a file).

// TailOptions say which of a process's last lines to read.
type TailOptions struct {
	// Lines is how many lines at most. 0: LogTail's default (100) when
	// Since is 0 too, else up to MaxTailLines.
	Lines int
	// Since keeps only what was written within Since before now, as far
	// as the node can tell (see above); 0 keeps everything.
	Since time.Duration
}

// MaxTailLines bounds TailOptions.Lines.
const MaxTailLines = 10000

// maxLogTail bounds how much of a log one tail reads.
const maxLogTail = 256 << 10

// LogSnapshot is the end of a process's log at one point of its output.
type LogSnapshot struct {
	// Tail is the lines asked for, as the child wrote them.
	Tail string
	// Offset is where Tail ends in the output this node has read of the
	// process since Epoch: the offset of the next byte a LogSink gets.
	Offset int64
	// Epoch names that count of offsets: when the node began reading the
	// process's output (UnixNano of its spawn or re-adoption); 0 when no
	// node of this run reads it (it ended before, or its output goes
	// elsewhere).
	Epoch int64
	// Truncated: more was asked for than a tail holds (256 KiB); the
	// oldest lines were left out.
	Truncated bool
}

// logMark dates a stretch of output: it begins at off, and was written
// from at to last (Unix seconds).
type logMark struct {
	off      int64
	at, last int64
}

// maxLogMarks bounds the marks a pipe keeps.
const maxLogMarks = 64

// logMarks date a pipe's output, oldest first, the first stretch
// beginning with the first output the pipe read. A new stretch begins at
// the first write every seconds or more after the last one began. They
// belong to the pipe's goroutine.
type logMarks struct {
	m     []logMark
	every int64
}

// note dates the write that begins at off, at now (Unix seconds).
func (ms *logMarks) note(off, now int64) {
	n := len(ms.m)
	if n > 0 && now < ms.m[n-1].at+ms.every {
		ms.m[n-1].last = now
		return
	}
	if ms.m == nil {
		ms.m, ms.every = make([]logMark, 0, maxLogMarks), 1
	}
	if n == maxLogMarks { // merge them two by two
		for k := range n / 2 {
			ms.m[k] = logMark{off: ms.m[2*k].off, at: ms.m[2*k].at, last: ms.m[2*k+1].last}
		}
		ms.m = ms.m[:n/2]
		ms.every *= 2
	}
	ms.m = append(ms.m, logMark{off: off, at: now, last: now})
}

// from returns the offset from which the output was written at cutoff
// (Unix seconds) or later, end being the offset where it ends now. A
// stretch written partly before the cutoff is kept whole. ok is false
// when the marks cannot tell: all of this pipe's output is that recent,
// and older output must be dated by its files.
func (ms *logMarks) from(cutoff, end int64) (off int64, ok bool) {
	n := len(ms.m)
	if n == 0 || ms.m[0].at >= cutoff {
		return 0, false
	}
	i := sort.Search(n, func(i int) bool { return ms.m[i].last >= cutoff })
	if i == n {
		return end, true // nothing since
	}
	return ms.m[i].off, true
}

// LogTail returns the last lines lines (default 100) of a process's
// captured stdout and stderr, ending with a newline, reading at most the
// last 256 KiB, from the current log file and, where it holds fewer
// lines, the older ones. It answers for a finished process as long as its
// record is kept (retention), across node restarts.
func (s *Supervisor) LogTail(id string, lines int) (string, error) {
	snap, err := s.Tail(context.Background(), id, TailOptions{Lines: lines})
	if err != nil {
		return "", err
	}
	text := bytes.TrimRight([]byte(snap.Tail), "\n")
	if len(text) == 0 {
		return "", nil
	}
	return string(text) + "\n", nil
}

// Tail returns the end of a process's log as opts ask, at most 256 KiB of
// whole lines. While the node reads the process's output, the tail is
// taken by the goroutine that writes the log, so Offset is exactly where
// it ends; ctx bounds the wait for it.
func (s *Supervisor) Tail(ctx context.Context, id string, opts TailOptions) (LogSnapshot, error) {
	if opts.Lines == 0 && opts.Since == 0 {
		opts.Lines = 100
	}
	return s.snapshot(ctx, id, nil, opts, "cannot read logs of %q")
}

// snapshot finds process id and takes its log's tail, from its pipe when
// it runs (handing the pipe sink, if not nil), else from the files. what
// starts the error's sentence.
func (s *Supervisor) snapshot(ctx context.Context, id string, sink LogSink, opts TailOptions, what string) (LogSnapshot, error) {
	p := s.lookup(id)
	if p == nil {
		return LogSnapshot{}, api.Errorf(ErrNotFound, what+": no such process", id)
	}
	if s.cfg.LogDir == "" {
		return LogSnapshot{}, api.Errorf(ErrNotFound, what+": this node does not capture output", id)
	}
	if opts.Lines < 0 || opts.Lines > MaxTailLines || opts.Since < 0 {
		return LogSnapshot{}, api.Errorf(api.ErrInvalid, what+": %d lines since %v is out of range (0 to %d lines, a positive time)", id, opts.Lines, opts.Since, MaxTailLines)
	}
	if lp := p.logs; lp != nil {
		snap, ok, err := lp.ask(ctx, opts, sink)
		if err != nil {
			return LogSnapshot{}, fmt.Errorf(what+": %w", id, err)
		}
		if ok {
			return snap, nil
		}
	}
	// No node reads its output, or its pipe has ended (so its offset and
	// marks stay as they are).
	snap, err := p.readTail(p.logs, opts, time.Now())
	if err != nil {
		return LogSnapshot{}, fmt.Errorf(what+": %w", id, err)
	}
	return snap, nil
}

// logNames are the paths of p's log files, newest first.
func (p *process) logNames() []string {
	base := p.sup.logPath(p.id)
	if p.legacyLog {
		base = p.sup.legacyLogPath(p.def.Name, p.id)
	}
	names := make([]string, max(p.logLimits.maxFiles, 1))
	names[0] = base
	for i := 1; i < len(names); i++ {
		names[i] = rotated(base, i)
	}
	return names
}

// readTail reads the tail of p's log as opts ask; lp, when not nil, is
// its pipe, and must be the caller's: its own goroutine, or one that has
// ended.
func (p *process) readTail(lp *logPipe, opts TailOptions, now time.Time) (LogSnapshot, error) {
	var snap LogSnapshot
	budget := int64(maxLogTail) // bytes from the end
	bySince := false            // the budget is what Since asks for
	lines := opts.Lines
	if lp != nil {
		snap.Offset, snap.Epoch = lp.pos, lp.epoch
	}
	if opts.Since > 0 {
		if lines == 0 {
			lines = MaxTailLines
		}
		cutoff := now.Add(-opts.Since)
		var want int64
		off, ok := int64(0), false
		if lp != nil {
			off, ok = lp.marks.from(cutoff.Unix(), lp.pos)
			want = lp.pos - off
		}
		if !ok {
			n, err := bytesSince(p.logNames(), cutoff)
			if err != nil {
				return snap, err
			}
			want = n
		}
		if want <= budget {
			budget, bySince = want, true
		} else {
			snap.Truncated = true
		}
	}
	if lines == 0 || budget == 0 {
		return snap, nil
	}
	text, short, err := tailFiles(p.logNames(), lines, budget)
	if err != nil {
		return snap, err
	}
	snap.Tail = string(text)
	snap.Truncated = snap.Truncated || short && !bySince
	return snap, nil
}

// bytesSince counts the bytes of the files (newest first) last modified
// at or after cutoff: a file's time says when its last line was written.
func bytesSince(names []string, cutoff time.Time) (int64, error) {
	var n int64
	for _, name := range names {
		fi, err := os.Stat(name)
		if errors.Is(err, fs.ErrNotExist) {
			break
		}
		if err != nil {
			return 0, err
		}
		if fi.ModTime().Before(cutoff) {
			break
		}
		n += fi.Size()
	}
	return n, nil
}

// tailFiles returns the last lines lines among the last budget bytes of
// the files (newest first, as rotation names them), whole lines only: a
// line the budget cuts is left out. short says the budget ended the read
// with fewer lines than asked for.
func tailFiles(names []string, lines int, budget int64) (text []byte, short bool, err error) {
	var parts [][]byte // newest first
	found := 0
	more := false // the budget stopped the read before the oldest output
	clean := true // what was read begins a line
	for _, name := range names {
		if found > lines {
			break
		}
		if budget <= 0 {
			_, err := os.Stat(name)
			more = err == nil
			break
		}
		e, whole, err := readEnd(name, budget)
		if errors.Is(err, fs.ErrNotExist) {
			break // no output yet, or no older file
		}
		if err != nil {
			return nil, false, err
		}
		parts = append(parts, e.data)
		budget -= int64(len(e.data))
		found += bytes.Count(e.data, []byte{'\n'})
		if !whole {
			more, clean = true, e.lineStart
			break
		}
	}
	var buf []byte
	for i := len(parts) - 1; i >= 0; i-- {
		buf = append(buf, parts[i]...)
	}
	if !clean { // the budget cut a line: leave it out
		if nl := bytes.IndexByte(buf, '\n'); nl >= 0 {
			buf = buf[nl+1:]
		} else {
			buf = nil
		}
	}
	n := bytes.Count(buf, []byte{'\n'})
	if len(buf) > 0 && buf[len(buf)-1] != '\n' {
		n++ // an unfinished last line
	}
	return lastLines(buf, lines), more && n < lines, nil
}

// end is the last bytes of a file: lineStart says a line begins at
// data[0] (the byte before is a newline).
type end struct {
	data      []byte
	lineStart bool
}

// readEnd reads the last max bytes of path; whole says that is all of it.
func readEnd(path string, max int64) (e end, whole bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return e, false, err
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return e, false, err
	}
	start := size - max
	if start <= 0 {
		start = 0
	} else {
		start-- // the byte before: does a line begin?
	}
	buf := make([]byte, size-start)
	if _, err := f.ReadAt(buf, start); err != nil && err != io.EOF {
		return e, false, err
	}
	if start == 0 && size <= max {
		return end{data: buf, lineStart: true}, true, nil
	}
	return end{data: buf[1:], lineStart: buf[0] == '\n'}, false, nil
}

// lastLines returns the end of b that holds its last n lines (a line ends
// with a newline, or is b's unfinished last one).
func lastLines(b []byte, n int) []byte {
	end := len(b)
	if end > 0 && b[end-1] == '\n' {
		end--
	}
	for i := end - 1; i >= 0; i-- {
		if b[i] == '\n' {
			if n--; n == 0 {
				return b[i+1:]
			}
		}
	}
	return b
}
