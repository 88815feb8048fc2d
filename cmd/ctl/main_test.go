package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/corral-run/corral/bus/embedded"
	"github.com/corral-run/corral/bus/service"
	"github.com/corral-run/corral/internal/testnode"
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

// testNode is one real node on an embedded NATS server, as corrald runs
// it; the corralctl helpers below are its methods.
type testNode struct{ *testnode.Node }

// definitions are what every test node offers.
var definitions = []node.Definition{
	{Name: "sleeper", Command: "sleep", Args: []string{"30"}, StopTimeout: time.Second, SpawnEnv: []string{"A"}, SpawnCwd: true},
	{Name: "talker", Command: "sh", Args: []string{"-c", "echo hello from $GREETING; exec sleep 30"}, StopTimeout: time.Second,
		SpawnEnv: []string{"GREETING"}},
}

// startNode starts node n1 (labels zone=a, role=test) defining "sleeper"
// and "talker", on an embedded server of its own, and stops everything
// when the test ends.
func startNode(t *testing.T) *testNode { return newTestNode(t, false) }

// startHistoryNode is startNode with JetStream: the node keeps its events
// in the stream CORRAL_EVENTS.
func startHistoryNode(t *testing.T) *testNode { return newTestNode(t, true) }

func newTestNode(t *testing.T, jetstream bool) *testNode {
	t.Helper()
	return addNode(t, testnode.StartServer(t, jetstream), nodeSpec{id: "n1", labels: map[string]string{"zone": "a", "role": "test"}, jetstream: jetstream})
}

// nodeSpec describes a node addNode starts.
type nodeSpec struct {
	id        string
	labels    map[string]string
	jetstream bool // events in the stream, record in the node registry
	heartbeat time.Duration
}

// addNode starts a node on srv defining "sleeper" and "talker", sampling
// stats every 100ms; it is stopped when the test ends.
func addNode(t *testing.T, srv *embedded.Server, spec nodeSpec) *testNode {
	t.Helper()
	return &testNode{testnode.Start(t, srv, testnode.Spec{
		ID: spec.id, JetStream: spec.jetstream, StatsInterval: 100 * time.Millisecond, Definitions: definitions,
		Service: service.Config{Labels: spec.labels, HeartbeatInterval: spec.heartbeat},
	})}
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
	return runCtl(t, append([]string{"--server", n.URL}, args...)...)
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
