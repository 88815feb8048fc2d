package node_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/internal/await"
	"github.com/corral-run/corral/internal/testchild"
	"github.com/corral-run/corral/node"
)

// runPrinter spawns a rolePrint child of definition name and waits for its end, which the node reports only once its
// output is in the log.
func runPrinter(t *testing.T, h *harness, name string) api.ManagedProcess {
	t.Helper()
	mp := h.spawn(t, name, node.SpawnOptions{})
	st := h.rec.Wait(t, node.KindStopped, mp.ID).Payload.(api.Stopped)
	if st.ExitCode == nil || *st.ExitCode != 0 {
		t.Fatalf("printer ended %+v", st)
	}
	return mp
}

// logFiles returns the log files of id, oldest first, with their content.
func logFiles(t *testing.T, dir, id string) (names []string, contents []string) {
	t.Helper()
	base := filepath.Join(dir, id+".log")
	for i := 1; ; i++ {
		if _, err := os.Stat(base + "." + strconv.Itoa(i)); err != nil {
			for j := i - 1; j >= 1; j-- {
				names = append(names, base+"."+strconv.Itoa(j))
			}
			break
		}
	}
	names = append(names, base)
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			t.Fatalf("log file: %v", err)
		}
		contents = append(contents, string(b))
	}
	return names, contents
}

// Output is rotated by size at line boundaries into at most log_max_files
// files of at most log_max_bytes each, and no line is lost or cut: with
// room for everything, the files put together are exactly what the child
// wrote; with three files, they hold the newest lines, whole.
func TestLogRotationKeepsEveryLineAndBoundsFiles(t *testing.T) {
	h := newHarnessWith(t, node.Config{LogMaxBytes: 1 << 20, LogMaxFiles: 2}) // the definitions override both
	const lines, maxBytes = 3000, 8 << 10
	env := map[string]string{testchild.EnvRole: rolePrint, envLines: strconv.Itoa(lines)}
	h.define(t, "all", env, func(d *node.Definition) { d.LogMaxBytes, d.LogMaxFiles = maxBytes, 100 })
	h.define(t, "three", env, func(d *node.Definition) { d.LogMaxBytes, d.LogMaxFiles = maxBytes, 3 })
	var want strings.Builder
	for i := range lines {
		want.WriteString(printedLine(i) + "\n")
	}
	want.WriteString("done, on stderr\n")
	logs := filepath.Join(h.dir, "logs")

	all := runPrinter(t, h, "all")
	names, contents := logFiles(t, logs, all.ID)
	if len(names) < 30 {
		t.Errorf("%d files for %d bytes rotated at %d", len(names), want.Len(), maxBytes)
	}
	for i, c := range contents {
		if len(c) > maxBytes || !strings.HasSuffix(c, "\n") {
			t.Errorf("%s: %d bytes, ends %q: want at most %d bytes, ending a line", names[i], len(c), c[max(len(c)-10, 0):], maxBytes)
		}
	}
	if got := strings.Join(contents, ""); got != want.String() {
		t.Errorf("the log files put together differ from what the child wrote (%d bytes, want %d)", len(got), want.Len())
	}

	three := runPrinter(t, h, "three")
	names, contents = logFiles(t, logs, three.ID)
	if len(names) != 3 {
		t.Errorf("log files %v, want 3", names)
	}
	got := strings.Join(contents, "")
	if !strings.HasSuffix(want.String(), got) || !strings.HasPrefix(got, "line ") {
		t.Errorf("the three files are not the newest whole lines:\n%.200s", got)
	}
	for i, c := range contents {
		if len(c) > maxBytes {
			t.Errorf("%s: %d bytes, over %d", names[i], len(c), maxBytes)
		}
	}
	tail, err := h.sup.LogTail(three.ID, 2)
	if err != nil || tail != printedLine(lines-1)+"\ndone, on stderr\n" {
		t.Errorf("LogTail: %q, %v", tail, err)
	}
}

// A spawn that fails before its command runs leaves no log file (nor a
// FIFO) behind, nor a record (reserved while the child starts).
func TestNoLogFileForASpawnThatNeverStarted(t *testing.T) {
	dir := testchild.ShortTempDir(t)
	h := newHarnessWith(t, node.Config{StateDir: dir})
	if err := h.sup.Define(node.Definition{Name: "ghost", Command: "/nonexistent/corral-test"}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := h.sup.Spawn(context.Background(), "ghost", node.SpawnOptions{}); err == nil {
			t.Fatal("spawn of a missing command succeeded")
		}
	}
	entries, _ := os.ReadDir(filepath.Join(h.dir, "logs"))
	if len(entries) != 0 {
		t.Errorf("failed spawns left files in the log directory: %v", entries)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("failed spawns left files in the state directory: %v", entries)
	}
}

// When a finished process is pruned (retention), its log files go with
// it; the kept processes keep theirs.
func TestLogFilesGoWhenTheProcessIsPruned(t *testing.T) {
	h := newHarnessWith(t, node.Config{RetentionMax: 1, LogMaxBytes: 4 << 10})
	h.define(t, "p", map[string]string{testchild.EnvRole: rolePrint, envLines: "200"}, nil)
	logs := filepath.Join(h.dir, "logs")
	first := runPrinter(t, h, "p")
	names, _ := logFiles(t, logs, first.ID)
	if len(names) != 3 {
		t.Fatalf("first process's log files %v, want 3 (20 KiB rotated at 4 KiB, 3 kept)", names)
	}
	second := runPrinter(t, h, "p") // the first is now beyond retention_max
	// Pruned as the second's end is handled, just after it is reported.
	await.Until(t, 10*time.Second, "the first process to be pruned with its files", func() bool {
		_, listed := h.sup.Get(first.ID)
		left, _ := filepath.Glob(filepath.Join(logs, first.ID+"*"))
		return !listed && len(left) == 0
	})
	if names, _ := logFiles(t, logs, second.ID); len(names) != 3 {
		t.Errorf("the kept process's log files: %v", names)
	}
	if out, err := h.sup.LogTail(second.ID, 1); err != nil || out != "done, on stderr\n" {
		t.Errorf("LogTail of the kept process: %q %v", out, err)
	}
}
