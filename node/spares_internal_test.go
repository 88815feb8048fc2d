package node

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/corral-run/corral/internal/await"
)

// Spares are made ahead up to keep, taken by a rename that never replaces
// a file, given back up to max (deleted past it), and a spare dir left by
// the node before is taken over, what is not a spare removed.
func TestSpares(t *testing.T) {
	dir := t.TempDir()
	spareDir := filepath.Join(dir, ".spare")
	if err := os.MkdirAll(spareDir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"zz", "not-ours"} { // a spare of the last node, and a stranger
		if err := makeFIFOFile(filepath.Join(spareDir, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(spareDir, "zy"), nil, 0o600); err != nil { // ours by name, not a FIFO
		t.Fatal(err)
	}
	sp := newSpares(spareDir, fs.ModeNamedPipe, makeFIFOFile)
	defer sp.close()
	count := func() int {
		entries, _ := os.ReadDir(spareDir)
		return len(entries)
	}
	await.Until(t, 10*time.Second, "spares made ahead", func() bool { return count() == sparesKeep })
	for _, name := range []string{"not-ours", "zy"} {
		if _, err := os.Lstat(filepath.Join(spareDir, name)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s left among the spares: %v", name, err)
		}
	}

	dst := filepath.Join(dir, "a.fifo")
	if took, err := sp.take(dst); !took || err != nil {
		t.Fatalf("take: %v, %v", took, err)
	}
	if fi, err := os.Lstat(dst); err != nil || fi.Mode()&fs.ModeNamedPipe == 0 {
		t.Fatalf("what was taken: %v, %v", fi, err)
	}
	if took, err := sp.take(dst); took || !errors.Is(err, fs.ErrExist) {
		t.Errorf("take over an existing file: %v, %v, want ErrExist", took, err)
	}
	await.Until(t, 10*time.Second, "the spare taken made again", func() bool { return count() >= sparesKeep })

	for i := range sparesMax + 5 {
		p := filepath.Join(dir, "given"+string(rune('a'+i%26))+string(rune('a'+i/26)))
		if err := makeFIFOFile(p); err != nil {
			t.Fatal(err)
		}
		if err := sp.give(p); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("given %s is still there", p)
		}
	}
	if n := count(); n != sparesMax {
		t.Errorf("%d spares after giving many, want at most %d", n, sparesMax)
	}
}
