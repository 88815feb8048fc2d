package e2e_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// A process that has ended is still listed (ps --all) and its output
// still readable (corralctl logs) after corrald is killed with SIGKILL and
// started again, within retention.
func TestLogsOfAFinishedProcessSurviveANodeCrash(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("python3"); err != nil {
		t.Fatalf("python3 is required by this test: %v", err)
	}
	n := startNode(t)
	ev := watch(t, n.url)
	p := n.spawn(t, "pyworker", `{"count":1}`)
	ev.waitFor(t, "process.stopped", p.ID, nil)

	n.kill9(t)
	n2 := n.restart(t)
	var found *process
	for _, q := range n2.listAll(t) {
		if q.ID == p.ID {
			found = &q
		}
	}
	if found == nil || found.Status != "stopped" {
		t.Fatalf("after the restart ps --all shows %+v, want %s stopped", found, p.ID)
	}
	if out := n2.ctl(t, "logs", p.ID); !strings.Contains(out, "done") {
		t.Errorf("logs of the finished process after the restart:\n%s", out)
	}
}

// echoTOML defines name: a child that prints "early 1" to "early 20" and
// "ready", then each line the test writes to the FIFO fifo as it comes,
// then "bye" once the test closes it, and exits 0.
func echoTOML(t *testing.T, name string) (toml, fifo string) {
	t.Helper()
	fifo = filepath.Join(t.TempDir(), "in")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	script := `i=0; while [ $i -lt 20 ]; do i=$((i+1)); echo "early $i"; done; echo ready; cat "$0"; echo bye`
	return fmt.Sprintf("\n[processes.%s]\ncommand = \"sh\"\nargs = [%q, %q, %q]\nstop_timeout = \"1s\"\n", name, "-c", script, fifo), fifo
}

// openFIFO opens the echo child's FIFO for writing (once its cat reads).
func openFIFO(t *testing.T, fifo string) *os.File {
	t.Helper()
	f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// follower is a running "corralctl logs -f".
type follower struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	out    bytes.Buffer // stdout so far
	more   chan struct{}
	stderr bytes.Buffer
	exited chan struct{}
}

func (n *node) follow(t *testing.T, args ...string) *follower {
	return n.followAs(t, n.ctlArgs, args...)
}

// followAs starts corralctl logs -f args as the user of ctlArgs.
func (n *node) followAs(t *testing.T, ctlArgs []string, args ...string) *follower {
	t.Helper()
	all := append(append([]string{"--server", n.url}, ctlArgs...), append([]string{"logs", "-f"}, args...)...)
	f := &follower{cmd: exec.Command(bin("corralctl"), all...), more: make(chan struct{}, 1), exited: make(chan struct{})}
	f.cmd.Env = programEnv()
	f.cmd.Stderr = &f.stderr
	stdout, err := f.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := f.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		var b [4096]byte
		for {
			k, err := stdout.Read(b[:])
			f.mu.Lock()
			f.out.Write(b[:k])
			f.mu.Unlock()
			select {
			case f.more <- struct{}{}:
			default:
			}
			if err != nil {
				_ = f.cmd.Wait()
				close(f.exited)
				return
			}
		}
	}()
	t.Cleanup(func() {
		_ = f.cmd.Process.Kill()
		<-f.exited
	})
	return f
}

func (f *follower) output() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.out.String()
}

// waitFor waits until stdout holds want.
func (f *follower) waitFor(t *testing.T, what string, want func(out string) bool) string {
	t.Helper()
	deadline := time.After(waitEvent)
	for {
		if out := f.output(); want(out) {
			return out
		}
		select {
		case <-f.more:
		case <-f.exited:
			if out := f.output(); want(out) {
				return out
			}
			t.Fatalf("logs -f exited (%v) before %s; it printed:\n%s\nstderr: %s", f.cmd.ProcessState, what, f.output(), f.stderr.String())
		case <-deadline:
			t.Fatalf("no %s from logs -f within %v; it printed:\n%s", what, waitEvent, f.output())
		}
	}
}

// wait waits for corralctl to exit and returns its status.
func (f *follower) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-f.exited:
		return f.cmd.ProcessState.ExitCode()
	case <-time.After(waitEvent):
		t.Fatalf("logs -f still running after %v; it printed:\n%s", waitEvent, f.output())
	}
	return -1
}

// logs -f started before a line is printed sees it, from another
// process, over NATS; --tail sets how much comes first; it exits 0 once
// the process ends, after its last line.
func TestLogsFollow(t *testing.T) {
	t.Parallel()
	toml, fifo := echoTOML(t, "echo")
	n := startNodeWith(t, toml)
	p := n.spawn(t, "echo", "{}")
	w := openFIFO(t, fifo) // its cat reads: "ready" was printed
	n.waitLog(t, p.ID, "ready")

	f := n.follow(t, "--tail", "3", p.ID[:len("proc_")+6]) // a prefix of its id
	if out := f.waitFor(t, "the tail", func(out string) bool { return strings.HasSuffix(out, "ready\n") }); out != "early 19\nearly 20\nready\n" {
		t.Errorf("--tail 3 printed %q", out)
	}
	if _, err := w.WriteString("printed after logs -f started\n"); err != nil {
		t.Fatal(err)
	}
	f.waitFor(t, "the line printed after", func(out string) bool { return strings.HasSuffix(out, "printed after logs -f started\n") })
	w.Close() // cat ends: "bye", and the process exits 0
	if code := f.wait(t); code != 0 {
		t.Errorf("logs -f exited %d after the process ended; stderr: %s", code, f.stderr.String())
	}
	if out := f.output(); out != "early 19\nearly 20\nready\nprinted after logs -f started\nbye\n" {
		t.Errorf("logs -f printed %q", out)
	}

	// Of an ended process: its tail, and at once the end.
	if out := n.ctl(t, "logs", "-f", "--tail", "2", p.ID); out != "printed after logs -f started\nbye\n" {
		t.Errorf("logs -f of the ended process: %q", out)
	}
	// What is not there is an error that says so.
	for _, ref := range []string{"proc_n0suchpr0cess000", "nosuchthing"} {
		out, err := n.runCtl("logs", "-f", ref)
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(err.Error(), "cannot follow") {
			t.Errorf("logs -f %s: %v %q, want exit 1 saying it cannot follow", ref, err, out)
		}
	}
}

// logs -f NAME follows every process of a definition, each line prefixed
// with its instance name or the start of its id, and takes in one that
// starts meanwhile.
func TestLogsFollowADefinition(t *testing.T) {
	t.Parallel()
	n := startNodeWith(t, `
[processes.chatty]
command = "sh"
args = ["-c", "echo \"hi from $DONKEYLABS_PROCESS_ID\"; exec sleep 60"]
instances = 2
stop_timeout = "1s"
`)
	f := n.follow(t, "chatty")
	instances := map[string]string{} // prefix → process id
	f.waitFor(t, "a line of each instance", func(out string) bool {
		for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
			if prefix, id, ok := strings.Cut(line, " | hi from "); ok {
				instances[strings.TrimSpace(prefix)] = id
			}
		}
		return instances["chatty/0"] != "" && instances["chatty/1"] != ""
	})
	p := n.spawn(t, "chatty", "{}")
	short := p.ID[len("proc_") : len("proc_")+8]
	f.waitFor(t, "the new process's line", func(out string) bool { return strings.Contains(out, short+" | hi from "+p.ID+"\n") })
	for _, q := range n.listAll(t) {
		if q.Instance != "" && instances[q.Instance] != q.ID {
			t.Errorf("%s is %s, its lines said %s", q.Instance, q.ID, instances[q.Instance])
		}
	}
	if err := f.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := f.wait(t); code != 0 {
		t.Errorf("logs -f exited %d on Ctrl-C; stderr: %s", code, f.stderr.String())
	}
}
