package node_test

import (
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/corral-run/corral/internal/testchild"
	"github.com/corral-run/corral/node"
	"github.com/corral-run/corral/node/nodetest"
)

// A socket directory corrald did not create — /tmp-like 1777, another
// owner's, one others may list — is refused at New, naming it and what to
// do, and left exactly as it was.
func TestSocketDirNotCorraldsIsRefusedAndLeftAlone(t *testing.T) {
	base := testchild.ShortTempDir(t)
	for _, tc := range []struct {
		name string
		mode fs.FileMode
		uid  int // -1: the test's own
		want string
	}{
		{"shared tmp", 0o777 | fs.ModeSticky, -1, "mode 1777"},
		{"world readable", 0o755, -1, "mode 0755"},
		{"another owner", 0o700, 65534, "owner uid 65534"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(base, strings.ReplaceAll(tc.name, " ", "-"))
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, tc.mode); err != nil {
				t.Fatal(err)
			}
			if tc.uid >= 0 {
				if os.Geteuid() != 0 {
					t.Skip("giving a directory to another user needs root")
				}
				if err := os.Chown(dir, tc.uid, tc.uid); err != nil {
					t.Fatal(err)
				}
			}
			before, _ := os.Stat(dir)
			_, err := node.New(node.Config{NodeID: "n1", SocketDir: dir, Reporter: nodetest.NewRecorder(),
				Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
			if err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), tc.want) ||
				!strings.Contains(err.Error(), "set node.socket_dir to a path that does not exist") {
				t.Fatalf("New with socket_dir %s (%s): %v, want a refusal naming it, %q, and what to do", dir, tc.name, err, tc.want)
			}
			after, _ := os.Stat(dir)
			if after.Mode() != before.Mode() {
				t.Errorf("mode changed from %s to %s", before.Mode(), after.Mode())
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("New left files in a directory it refused: %v", entries)
			}
		})
	}
}

// A socket directory that does not exist is created, mode 0700, and one
// corrald made before (0700, or 0711 after children ran as another user)
// is used as it is.
func TestSocketDirIsCreatedPrivate(t *testing.T) {
	dir := filepath.Join(testchild.ShortTempDir(t), "a", "sock")
	for range 2 { // created, then found
		sup, err := node.New(node.Config{NodeID: "n1", SocketDir: dir, Reporter: nodetest.NewRecorder(),
			Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
		if err != nil {
			t.Fatal(err)
		}
		closeOnCleanup(t, sup)
		if fi, err := os.Stat(dir); err != nil || fi.Mode() != fs.ModeDir|0o700 {
			t.Fatalf("socket dir %v %v, want a directory, mode 0700", fi, err)
		}
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	sup, err := node.New(node.Config{NodeID: "n1", SocketDir: dir, Reporter: nodetest.NewRecorder(),
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatalf("a 0711 socket dir of corrald's: %v", err)
	}
	closeOnCleanup(t, sup)
}
