package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/corral-run/corral/bus"
	"github.com/corral-run/corral/node"
)

// corralctl is the binary under test, built once by TestMain.
var corralctl string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "corralctl-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	corralctl = filepath.Join(dir, "corralctl")
	out, err := exec.Command("go", "build", "-o", corralctl, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "cannot build corralctl: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// testNode is one real node on an embedded NATS server, as corrald runs it.
type testNode struct {
	url string
	srv *server.Server
	svc *bus.Service
	sup *node.Supervisor
	ctl *bus.Control // the test's own view, to check what corralctl says

	detached bool // the supervisor let go of its children: see die
}

// startNode starts node n1 (labels zone=a, role=test) defining "sleeper"
// (sleep 30) and "talker" (prints a line, then sleeps), and stops
// everything when the test ends.
func startNode(t *testing.T) *testNode { return newTestNode(t, false) }

// startHistoryNode is startNode with JetStream: the node keeps its events
// in the stream CORRAL_EVENTS.
func startHistoryNode(t *testing.T) *testNode { return newTestNode(t, true) }

func newTestNode(t *testing.T, jetstream bool) *testNode {
	t.Helper()
	return addNode(t, startServer(t, jetstream), nodeSpec{id: "n1", labels: map[string]string{"zone": "a", "role": "test"}, jetstream: jetstream})
}

// startServer starts an embedded NATS server, with JetStream or not.
func startServer(t *testing.T, jetstream bool) *server.Server {
	t.Helper()
	cfg := bus.ServerConfig{Listen: "127.0.0.1:-1", Logger: slog.New(slog.DiscardHandler)}
	if jetstream {
		cfg.JetStream, cfg.StoreDir = true, t.TempDir()
	}
	srv, err := bus.StartServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	return srv
}

// nodeSpec describes a node addNode starts.
type nodeSpec struct {
	id     string
	labels map[string]string
	// jetstream: the server has JetStream; the node keeps its events in
	// the stream and its record in the node registry.
	jetstream bool
	heartbeat time.Duration
}

// addNode starts a node on srv defining "sleeper" and "talker"; it is
// stopped when the test ends.
func addNode(t *testing.T, srv *server.Server, spec nodeSpec) *testNode {
	t.Helper()
	nc, err := bus.ConnectInProcess(srv, spec.id)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	cfg := bus.ServiceConfig{NodeID: spec.id, Labels: spec.labels, HeartbeatInterval: spec.heartbeat,
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil))}
	if spec.jetstream {
		cfg.Relay = bus.RelayConfig{Durable: true, Stream: &bus.StreamConfig{}}
		cfg.Registry = &bus.RegistryConfig{}
	}
	svc := bus.NewService(nc, cfg)
	t.Cleanup(func() {
		if err := svc.Close(); err != nil {
			t.Errorf("closing service: %v", err)
		}
	})
	if err := svc.EnsureStream(t.Context()); err != nil {
		t.Fatal(err)
	}
	// Unix socket paths must fit in 108 bytes: t.TempDir() can be too long.
	sockDir, err := os.MkdirTemp("", "c")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	sup, err := node.New(node.Config{NodeID: spec.id, SocketDir: sockDir, LogDir: filepath.Join(t.TempDir(), "log"), Reporter: svc, StatsInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	n := &testNode{url: srv.ClientURL(), srv: srv, svc: svc, sup: sup}
	t.Cleanup(func() {
		if n.detached {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := sup.Close(ctx); err != nil {
			t.Errorf("closing supervisor: %v", err)
		}
	})
	for _, d := range []node.Definition{
		{Name: "sleeper", Command: "sleep", Args: []string{"30"}, StopTimeout: time.Second},
		{Name: "talker", Command: "sh", Args: []string{"-c", "echo hello from $GREETING; exec sleep 30"}, StopTimeout: time.Second},
	} {
		if err := sup.Define(d); err != nil {
			t.Fatal(err)
		}
	}
	if err := svc.Serve(sup); err != nil {
		t.Fatal(err)
	}
	cc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cc.Close)
	n.ctl = bus.NewControl(cc)
	return n
}

// die takes the node off the bus as a crash would, its children left
// running; they are killed when the test ends.
func (n *testNode) die(t *testing.T) {
	t.Helper()
	procs := n.sup.GetAll()
	n.detached = true
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := n.sup.Detach(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, p := range procs {
			_ = syscall.Kill(-p.PID, syscall.SIGKILL)
		}
	})
	if err := n.svc.Close(); err != nil {
		t.Fatal(err)
	}
}

// result is one run of corralctl.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// run runs corralctl against the node with args and returns what it did.
func (n *testNode) run(t *testing.T, args ...string) result {
	t.Helper()
	return runCtl(t, append([]string{"--server", n.url}, args...)...)
}

func runCtl(t *testing.T, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, corralctl, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	case err != nil:
		t.Fatalf("corralctl %v: %v", args, err)
	}
	return r
}

// ok runs corralctl and fails the test unless it succeeds.
func (n *testNode) ok(t *testing.T, args ...string) string {
	t.Helper()
	r := n.run(t, args...)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("corralctl %v: %v", args, r)
	}
	return r.stdout
}

// fails runs corralctl and fails the test unless it exits with code and
// says what it must on stderr.
func (n *testNode) fails(t *testing.T, code int, want string, args ...string) {
	t.Helper()
	r := n.run(t, args...)
	if r.code != code {
		t.Errorf("corralctl %v: exit %d, want %d\n%v", args, r.code, code, r)
	}
	if !strings.HasPrefix(r.stderr, "corralctl: ") || !strings.Contains(r.stderr, want) {
		t.Errorf("corralctl %v: stderr %q, want \"corralctl: ...%s...\"", args, r.stderr, want)
	}
}
