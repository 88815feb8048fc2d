package node

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/corral-run/corral/internal/await"
)

// Carrying output from the FIFO to the log file allocates nothing per
// read: the buffer is pooled, the file kept open while output flows.
func TestLogPipeDoesNotAllocatePerRead(t *testing.T) {
	dir := t.TempDir()
	s := &Supervisor{cfg: Config{LogDir: dir}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	p := &process{sup: s, id: "proc_a110cat10nsper0", def: &definition{Definition: Definition{Name: "w"}},
		logLimits: logLimits{maxBytes: 1 << 30, maxFiles: 3}}
	lp, w, err := s.makeFIFO(p)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { lp.run(); close(done) }()
	line := make([]byte, 1000)
	for i := range line {
		line[i] = 'x'
	}
	line[len(line)-1] = '\n'
	const writes = 20000
	logFile := filepath.Join(dir, p.id+".log")
	var st syscall.Stat_t
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range writes {
		if _, err := syscall.Write(w, line); err != nil {
			t.Fatal(err)
		}
	}
	await.Until(t, 10*time.Second, "the output in the log", func() bool {
		return syscall.Stat(logFile, &st) == nil && st.Size == int64(writes*len(line))
	})
	runtime.ReadMemStats(&after)
	syscall.Close(w)
	<-done
	// 20 MB come in hundreds of reads at least (64 KiB each at most):
	// opening the file and waiting for it allocate a little, reads must
	// not. (A rotation allocates a dozen: a file, its names.)
	n := after.Mallocs - before.Mallocs
	t.Logf("%d allocations carrying %d lines of %d bytes", n, writes, len(line))
	if n > 200 { // fewer than the reads
		t.Errorf("%d allocations carrying %d lines: some per read", n, writes)
	}
}

// A log whose rotation fails (here: a directory where the next file goes)
// drops what does not fit instead of trying again forever: the write
// returns, so the child's output keeps flowing.
func TestFailedRotationDropsInsteadOfSpinning(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.log")
	if err := os.WriteFile(path, []byte("0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(rotated(path, 1), "full"), 0o700); err != nil {
		t.Fatal(err)
	}
	w := newLogFile(path, logLimits{maxBytes: 16, maxFiles: 2})
	var failures int
	w.report = func(error) { failures++ }
	done := make(chan struct{})
	go func() {
		w.write([]byte("a line too long for what is left\n"))
		w.write([]byte("and another, read later\n")) // the same failure: not reported again
		w.close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("write still running 10 s later: the failed rotation is tried again forever")
	}
	if failures != 1 {
		t.Errorf("%d failures reported, want 1", failures)
	}
}
