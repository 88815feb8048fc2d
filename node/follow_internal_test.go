package node

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/corral-run/corral/api"
)

// countingSink counts what it is handed.
type countingSink struct{ calls, bytes int }

func (c *countingSink) LogOutput(data []byte, _, _ int64) { c.calls++; c.bytes += len(data) }

// newTestPipe makes a process's FIFO and pipe in dir, without running its
// goroutine; the test plays it.
func newTestPipe(t testing.TB, dir string) *logPipe {
	t.Helper()
	s := &Supervisor{cfg: Config{LogDir: dir}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	p := &process{sup: s, id: "proc_f0110wh00kc0st00", def: &definition{Definition: Definition{Name: "w"}},
		logLimits: logLimits{maxBytes: 1 << 30, maxFiles: 3}}
	lp, w, err := s.makeFIFO(p)
	if err != nil {
		t.Fatal(err)
	}
	p.logs = lp
	t.Cleanup(func() { syscall.Close(w); lp.closeUnstarted(); lp.out.close() })
	return lp
}

// The follow hook, where the node has just written a read to the log,
// allocates nothing while nobody follows (one atomic load is its whole
// cost); with a follower, the follower gets every byte.
func TestFollowHookCostsNothingWhileNobodyFollows(t *testing.T) {
	lp := newTestPipe(t, t.TempDir())
	lp.buf = logBuffers.Get().(*[logReadSize]byte)
	line := []byte(strings.Repeat("x", 99) + "\n")
	read := func() { // what run does with a read of one line
		lp.held = 0
		copy(lp.buf[:], line)
		lp.consume(len(line))
	}
	if n := testing.AllocsPerRun(1000, read); n != 0 {
		t.Errorf("%v allocations per read while nobody follows, want 0", n)
	}
	sink := &countingSink{}
	lp.tap.Store(&logTap{sink: sink})
	const reads = 100
	for range reads {
		read()
	}
	if sink.calls != reads || sink.bytes != reads*len(line) {
		t.Errorf("the follower got %d calls, %d bytes; want %d, %d", sink.calls, sink.bytes, reads, reads*len(line))
	}
	lp.tap.Store(nil)
	read()
	if sink.calls != reads {
		t.Error("the follower got output after it was taken away")
	}
	if want := int64((1001 + reads + 1) * len(line)); lp.pos != want { // AllocsPerRun runs once more than asked
		t.Errorf("offset %d after %d bytes", lp.pos, want)
	}
}

// What writing a read to the log costs while nobody follows: the write
// itself, and the hook's atomic load.
func BenchmarkFollowHook(b *testing.B) {
	lp := newTestPipe(b, b.TempDir())
	lp.out = newLogFile(lp.out.names[0], logLimits{maxBytes: 8 << 20, maxFiles: 1}) // bounded on disk
	line := []byte(strings.Repeat("x", 99) + "\n")
	now := time.Now()
	b.Run("nobody", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			lp.put(line, now)
		}
	})
}

// Marks date the output to the second, and when they fill up, merge two
// by two and keep dating all of it, more coarsely.
func TestLogMarks(t *testing.T) {
	var ms logMarks
	// Output at 100 (offsets 0..), 101 (10..), 105 (20..), 105, 106 (40..).
	for _, w := range []struct{ off, at int64 }{{0, 100}, {5, 100}, {10, 101}, {20, 105}, {30, 105}, {40, 106}} {
		ms.note(w.off, w.at)
	}
	const end = 50
	for _, tc := range []struct {
		cutoff, off int64
		ok          bool
	}{
		{90, 0, false},   // before it all: the files must tell
		{100, 0, false},  // all of it
		{101, 10, true},  // the second second on
		{102, 20, true},  // nothing at 102..104
		{105, 20, true},  //
		{106, 40, true},  //
		{107, end, true}, // nothing since
	} {
		if off, ok := ms.from(tc.cutoff, end); off != tc.off || ok != tc.ok {
			t.Errorf("from(%d) = %d, %v; want %d, %v", tc.cutoff, off, ok, tc.off, tc.ok)
		}
	}

	// A write every second for 1000 s: marks stay bounded and still date
	// the output within a few stretches.
	var busy logMarks
	for i := range int64(1000) {
		busy.note(i*100, 1000+i)
	}
	if len(busy.m) > maxLogMarks {
		t.Fatalf("%d marks, over %d", len(busy.m), maxLogMarks)
	}
	for _, back := range []int64{1, 10, 100, 500, 999} {
		cutoff := 2000 - back // the output from cutoff on began at (cutoff-1000)*100
		off, ok := busy.from(cutoff, 1000*100)
		exact := (cutoff - 1000) * 100
		if !ok || off > exact || exact-off > 2*busy.every*100 {
			t.Errorf("from(%d) = %d, %v; the output since began at %d (stretches of %d s)", cutoff, off, ok, exact, busy.every)
		}
	}
}

// A tail is whole lines: the last ones asked for, those written since a
// time (by the marks while the node read them, by the files' times
// before), never a line cut by the byte budget.
func TestReadTail(t *testing.T) {
	dir := t.TempDir()
	lp := newTestPipe(t, dir)
	p := lp.p
	now := time.Unix(10_000, 0)
	var all strings.Builder
	write := func(line string, at int64) {
		lp.put([]byte(line+"\n"), time.Unix(at, 0))
		all.WriteString(line + "\n")
	}
	for i, at := range []int64{9000, 9500, 9990, 9995, 9999} {
		write("line "+string(rune('a'+i)), at)
	}
	tail := func(opts TailOptions) LogSnapshot {
		t.Helper()
		snap, err := p.readTail(lp, opts, now)
		if err != nil {
			t.Fatal(err)
		}
		if snap.Offset != lp.pos || snap.Epoch != lp.epoch {
			t.Errorf("snapshot at %d (epoch %d), the pipe is at %d (%d)", snap.Offset, snap.Epoch, lp.pos, lp.epoch)
		}
		return snap
	}
	for _, tc := range []struct {
		opts TailOptions
		want string
	}{
		{TailOptions{Lines: 2}, "line d\nline e\n"},
		{TailOptions{Lines: 100}, all.String()},
		{TailOptions{}, ""},
		{TailOptions{Since: 8 * time.Second}, "line d\nline e\n"},
		{TailOptions{Since: 8 * time.Second, Lines: 1}, "line e\n"},
		{TailOptions{Since: 11 * time.Second}, "line c\nline d\nline e\n"},
		{TailOptions{Since: time.Hour}, all.String()},
		{TailOptions{Since: time.Millisecond}, "line e\n"}, // the last second's stretch
	} {
		if got := tail(tc.opts); got.Tail != tc.want || got.Truncated {
			t.Errorf("tail %+v = %q (truncated %v), want %q", tc.opts, got.Tail, got.Truncated, tc.want)
		}
	}

	// Without marks (output of an earlier node), the files' times date it:
	// an older rotated file is left out whole.
	old := rotated(lp.out.names[0], 1)
	if err := os.WriteFile(old, []byte("older 1\nolder 2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(old, now.Add(-2*time.Hour), now.Add(-2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(lp.out.names[0], now.Add(-time.Minute), now.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		since time.Duration
		want  string
	}{
		{time.Hour, all.String()},
		{3 * time.Hour, "older 1\nolder 2\n" + all.String()},
		{time.Second, ""},
	} {
		snap, err := p.readTail(nil, TailOptions{Since: tc.since}, now)
		if err != nil || snap.Tail != tc.want {
			t.Errorf("without marks, since %v: %q, %v; want %q", tc.since, snap.Tail, err, tc.want)
		}
	}
}

// The byte budget never cuts a line: the one it would cut is left out,
// and the tail says it is short of what was asked.
func TestTailFilesKeepsWholeLines(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "p.log")
	if err := os.WriteFile(base+".1", []byte("one\ntwo\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(base, []byte("three\nfour\nfive"), 0o600); err != nil {
		t.Fatal(err)
	}
	names := []string{base, base + ".1", base + ".2"}
	for _, tc := range []struct {
		lines  int
		budget int64
		want   string
		short  bool
	}{
		{1, 100, "five", false},
		{2, 100, "four\nfive", false},
		{10, 100, "one\ntwo\nthree\nfour\nfive", false},
		{10, 9, "four\nfive", true},              // the budget ends where a line begins
		{10, 10, "four\nfive", true},             // and one byte more: an empty piece of a line
		{10, 12, "four\nfive", true},             // "ee\n" is left out
		{10, 17, "three\nfour\nfive", true},      // "o\n" of the older file is left out
		{10, 19, "two\nthree\nfour\nfive", true}, // its last line, whole
		{2, 10, "four\nfive", false},             // what was asked for fits
		{10, 3, "", true},                        // not even one whole line
	} {
		got, short, err := tailFiles(names, tc.lines, tc.budget)
		if err != nil || string(got) != tc.want || short != tc.short {
			t.Errorf("tailFiles(%d lines, %d bytes) = %q, %v, %v; want %q, %v", tc.lines, tc.budget, got, short, err, tc.want, tc.short)
		}
	}
}

// A follow whose caller gave up before the pipe's goroutine took it gets
// no tap, and the asks waiting for one pipe are bounded.
func TestAbandonedFollowGetsNoTapAndAsksAreBounded(t *testing.T) {
	lp := newTestPipe(t, t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	sink := &countingSink{}
	for i := range maxAsks {
		if _, _, err := lp.ask(ctx, TailOptions{}, sink); !errors.Is(err, context.Canceled) {
			t.Fatalf("ask %d: %v, want it given up", i, err)
		}
	}
	if _, _, err := lp.ask(context.Background(), TailOptions{}, sink); !errors.Is(err, api.ErrNoCapacity) {
		t.Fatalf("ask past %d waiting: %v, want 503", maxAsks, err)
	}
	lp.answer(true)
	if tap := lp.tap.Load(); tap != nil {
		t.Error("a follow whose caller had gone was given the tap")
	}
}
