package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/internal/await"
)

// screen collects what a program writes to its pseudo-terminal.
type screen struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *screen) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(b)
}

// since returns what was written from offset on, and the new offset.
func (s *screen) since(offset int) (string, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.buf.Bytes()
	return string(b[min(offset, len(b)):]), len(b)
}

// top runs corralctl top in a pseudo-terminal of 140 columns by 30 rows,
// as a person at a terminal (over ssh, say) would.
type topSession struct {
	t      *testing.T
	cmd    *exec.Cmd
	tty    io.ReadWriteCloser
	out    *screen
	offset int
	exited chan error // cmd.Wait's error, once top has exited and all it wrote is read
}

func startTop(t *testing.T, n *testNode, args ...string) *topSession {
	t.Helper()
	cmd := exec.Command(corralctl, append([]string{"--server", n.URL, "top"}, args...)...)
	cmd.Env = append(cmd.Environ(), "TERM=xterm")
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Cols: 140, Rows: 30})
	if err != nil {
		t.Fatalf("cannot start corralctl top in a pseudo-terminal: %v", err)
	}
	s := &topSession{t: t, cmd: cmd, tty: tty, out: &screen{}, exited: make(chan error, 1)}
	// The terminal's last bytes may still be unread when the process is
	// reaped: exited reports only once the copy has reached the end (the
	// master reads EIO when the last holder of the other side is gone).
	drained := make(chan struct{})
	go func() { _, _ = io.Copy(s.out, tty); close(drained) }()
	go func() {
		err := cmd.Wait()
		<-drained
		s.exited <- err
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		tty.Close()
	})
	return s
}

// see waits until the screen shows want (in what was drawn since the last
// wait).
func (s *topSession) see(want string) string {
	s.t.Helper()
	var seen string
	if !await.Poll(10*time.Second, func() bool {
		var text string
		text, _ = s.out.since(s.offset)
		seen = text
		return strings.Contains(text, want)
	}) {
		s.t.Fatalf("top never showed %q; it showed:\n%q", want, seen)
	}
	_, s.offset = s.out.since(0)
	return seen
}

func (s *topSession) press(keys string) {
	s.t.Helper()
	if _, err := s.tty.Write([]byte(keys)); err != nil {
		s.t.Fatal(err)
	}
}

// top in a pseudo-terminal: processes by CPU, the keys to follow logs,
// restart and stop, and a terminal left as it was.
func TestTopInATerminal(t *testing.T) {
	n := startNode(t)
	ctx := t.Context()
	mp, err := n.Ctl.Spawn(ctx, "", "talker", api.SpawnRequest{Env: map[string]string{"GREETING": "the terminal"}})
	if err != nil {
		t.Fatal(err)
	}
	top := startTop(t, n, "--interval", "200ms")
	screen := top.see(mp.ID)
	for _, want := range []string{"\x1b[?1049h", "corralctl top", "1 nodes (0 gone)", "CPU%", "talker", "running"} {
		if !strings.Contains(screen, want) {
			t.Errorf("the first screen does not show %q:\n%q", want, screen)
		}
	}
	// Its logs, followed; Esc goes back.
	top.press("l")
	top.see("hello from the terminal")
	top.press("\x1b")
	top.see("RESTARTS")

	// Restart, confirmed: a new process.
	top.press("r")
	top.see("restart " + mp.ID + "? (y/n)")
	top.press("y")
	top.see("restarted " + mp.ID + " as proc_")
	var restarted api.ManagedProcess
	await.Until(t, 10*time.Second, "the new process", func() bool {
		res, err := n.Ctl.List(ctx, api.ListRequest{})
		if err != nil || len(res.Processes) != 1 || res.Processes[0].ID == mp.ID {
			return false
		}
		restarted = res.Processes[0]
		return true
	})
	top.see(restarted.ID + "  talker") // its row, not only the message

	// Stop: n cancels, y stops.
	top.press("s")
	top.see("? (y/n)")
	top.press("n")
	top.see("stop cancelled")
	top.press("s")
	top.see("stop " + restarted.ID + "? (y/n)")
	top.press("y")
	top.see("stop " + restarted.ID + ": done")
	if got, err := n.Ctl.Get(ctx, restarted.ID); err != nil || !got.Status.Finished() {
		t.Errorf("after stop in top: %+v, %v", got, err)
	}

	top.press("q")
	select {
	case err := <-top.exited:
		if err != nil {
			t.Errorf("top exited with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("top did not quit on q")
	}
	if rest, _ := top.out.since(0); !strings.HasSuffix(rest, "\x1b[?25h\x1b[?1049l") {
		t.Errorf("top did not give the terminal back: ends with %q", rest[max(0, len(rest)-40):])
	}
}

// top --json: one snapshot for scripts, the busiest first; without a
// terminal and without --json, a clear refusal.
func TestTopJSON(t *testing.T) {
	n := startNode(t)
	ctx := context.Background()
	for range 2 {
		if _, err := n.Ctl.Spawn(ctx, "", "sleeper", api.SpawnRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	var snap struct {
		Nodes     []api.NodeInfo       `json:"nodes"`
		Processes []api.ManagedProcess `json:"processes"`
	}
	if err := json.Unmarshal([]byte(n.ok(t, "top", "--json")), &snap); err != nil {
		t.Fatal(err)
	}
	if len(snap.Nodes) != 1 || len(snap.Processes) != 2 {
		t.Errorf("top --json = %+v", snap)
	}
	n.fails(t, 1, "top needs a terminal (for scripts: corralctl top --json)", "top")
	n.fails(t, 2, "--interval must be at least 100ms", "top", "--interval", "1ms")
}

func TestParseKeys(t *testing.T) {
	for in, want := range map[string][]int{
		"q":            {'q'},
		"\x1b[A\x1b[B": {keyUp, keyDown},
		"\x1b":         {keyEsc},
		"\r":           {keyEnter},
		"\x1b[15~s":    {'s'}, // F5, skipped
		"jk\x03":       {'j', 'k', 3},
	} {
		if got := parseKeys([]byte(in)); !slices.Equal(got, want) {
			t.Errorf("parseKeys(%q) = %v, want %v", in, got, want)
		}
	}
}
