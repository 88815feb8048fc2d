package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/corral-run/corral/internal/await"
	"github.com/nats-io/nats.go"
)

var (
	// repoDir is the module root: config.example.toml and examples/ live there.
	repoDir string
	// workDir is corrald's working directory; the programs are in
	// workDir/bin, so the example config's "./bin/encoder-demo" resolves.
	workDir string
)

// programs are built once, by TestMain, into workDir/bin.
var programs = []struct{ name, pkg string }{
	{"corrald", "./cmd/node"},
	{"corralctl", "./cmd/ctl"},
	{"encoder-demo", "./examples/encoder-demo"},
	{"consumer-demo", "./examples/consumer-demo"},
	{"emitter", "./e2e/testdata/emitter"},
}

// How long the tests wait for things that take milliseconds when all is well.
const (
	waitEvent = 20 * time.Second // an event on process.>
	waitReady = 60 * time.Second // corrald answering on the bus
	waitExit  = 10 * time.Second // corrald exiting after SIGTERM
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	if repoDir, err = moduleRoot(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	if workDir, err = os.MkdirTemp("", "e2e-bin"); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(workDir)
	for _, p := range programs {
		args := []string{"build", "-o", filepath.Join(workDir, "bin", p.name)}
		if raceEnabled {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, p.pkg)...)
		cmd.Dir = repoDir
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: cannot build %s: %v\n%s", p.pkg, err, out)
			return 1
		}
	}
	return m.Run()
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("cannot run go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("cannot find the module root: go env GOMOD is empty")
	}
	return filepath.Dir(gomod), nil
}

func bin(name string) string { return filepath.Join(workDir, "bin", name) }

// extraDefinitions are added to config.example.toml's for the tests.
const extraDefinitions = `
[processes.pyworker]
command = "python3"
args = [%q]
stop_timeout = "2s"

[processes.pyworker.events.greeting]
type = "object"
required = ["message"]
properties = { message = { type = "string" }, n = { type = "integer" } }
`

// node is one running corrald.
type node struct {
	id      string
	url     string // NATS client URL of its embedded server
	port    int
	cfgPath string
	dataDir string
	logPath string   // corrald's stdout and stderr
	ctlArgs []string // what corralctl needs besides --server: credentials, TLS
	fab     *fabric  // when set, corrald and corralctl run in its namespace n.id
	quiet   bool     // a failed test does not print its logs (the chaos test keeps them)
	cmd     *exec.Cmd
	exited  chan struct{} // closed once cmd.Wait has returned

	stopOnce sync.Once
}

// startNode starts corrald with the definitions of config.example.toml
// (plus extraDefinitions), its embedded NATS server on a free port, and
// waits until it answers on the bus. The node is stopped with SIGTERM at
// the end of the test, which then checks it exited 0 and left no socket.
func startNode(t testing.TB) *node { return startNodeWith(t, "") }

// startNodeWith is startNode with more TOML appended to the config.
func startNodeWith(t testing.TB, extraTOML string, ctlArgs ...string) *node {
	t.Helper()
	example, err := os.ReadFile(filepath.Join(repoDir, "config.example.toml"))
	if err != nil {
		t.Fatal(err)
	}
	cfgDir := t.TempDir()
	cfgPath := filepath.Join(cfgDir, "corral.toml")
	cfg := string(example) + fmt.Sprintf(extraDefinitions, filepath.Join(repoDir, "examples", "raw-worker.py")) + extraTOML
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	// Unix socket paths are short: t.TempDir is too long for
	// <data_dir>/sock/<processId>.sock.
	dataDir, err := os.MkdirTemp("", "e2e")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dataDir) })
	port := freePort(t)
	n := &node{id: "e2e", port: port, url: fmt.Sprintf("nats://127.0.0.1:%d", port), cfgPath: cfgPath,
		dataDir: dataDir, logPath: filepath.Join(cfgDir, "corrald.log"), ctlArgs: ctlArgs}
	n.launch(t)
	return n
}

// restart starts a new corrald on the same config, data directory and
// port as n (which must have exited), as a restarted node would.
func (n *node) restart(t testing.TB) *node {
	t.Helper()
	m := &node{id: n.id, port: n.port, url: n.url, cfgPath: n.cfgPath, dataDir: n.dataDir, logPath: n.logPath + ".2", ctlArgs: n.ctlArgs}
	m.launch(t)
	return m
}

// kill9 kills corrald with SIGKILL, as a crash would, and waits for it.
func (n *node) kill9(t testing.TB) {
	t.Helper()
	n.stopOnce.Do(func() {
		if err := n.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		<-n.exited
	})
}

func (n *node) launch(t testing.TB) {
	t.Helper()
	// The [node] and [nats] keys from the environment, as an operator
	// would set them.
	n.run(t, programEnv(
		"CORRAL_NODE_ID="+n.id,
		"CORRAL_NODE_DATA_DIR="+n.dataDir,
		"CORRAL_NODE_LOG_LEVEL=debug",
		fmt.Sprintf("CORRAL_NATS_LISTEN=127.0.0.1:%d", n.port),
	))
	n.waitReady(t)
}

// start runs corrald on its config file alone (no CORRAL_* overrides) and
// does not wait: cluster nodes are ready only together.
func (n *node) start(t testing.TB) {
	t.Helper()
	n.run(t, programEnv())
}

func (n *node) run(t testing.TB, env []string) {
	t.Helper()
	n.exited = make(chan struct{})
	logFile, err := os.Create(n.logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close() // corrald has its own copy
	argv := n.argv(bin("corrald"), "--config", n.cfgPath)
	n.cmd = exec.Command(argv[0], argv[1:]...)
	n.cmd.Dir = workDir
	n.cmd.Stdout, n.cmd.Stderr = logFile, logFile
	n.cmd.Env = env
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		n.cmd.Wait()
		close(n.exited)
	}()
	t.Cleanup(func() {
		n.stop(t)
		if t.Failed() && !n.quiet {
			n.dumpLogs(t)
		}
	})
}

// argv is the command line that runs a program where the node runs
// (inside its namespace, on a fabric).
func (n *node) argv(name string, args ...string) []string {
	if n.fab != nil {
		return n.fab.argv(n.id, name, args...)
	}
	return append([]string{name}, args...)
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	return freePorts(t, 1)[0]
}

// freePorts returns n distinct free ports: their listeners are all open
// at once, so the kernel cannot hand one out twice (a cluster's client and
// route ports once collided when taken one by one).
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports
}

// programEnv is the environment of the programs the tests run: the test's
// own, less any CORRAL_* variable (corrald gets the tests' own), plus extra;
// corrald's HTTP gateway listens on a free port.
// Race-built programs sleep 1 s at exit unless told otherwise, which adds
// up over a test's many corralctl runs.
func programEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CORRAL_") && !strings.HasPrefix(kv, "GORACE=") {
			env = append(env, kv)
		}
	}
	env = append(env, strings.TrimSpace("GORACE="+os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	// Nodes run side by side: each HTTP gateway on a port of its own.
	env = append(env, "CORRAL_HTTP_LISTEN=127.0.0.1:0")
	return append(env, extra...)
}

// waitReady polls corralctl ps until the node answers it.
func (n *node) waitReady(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(waitReady)
	for {
		// Ready once the node itself answers a list: after a restart, nodes
		// lists the node from the record of its last life at once.
		out, err := n.runCtl("--timeout", "2s", "ps", "--json")
		if err == nil {
			var res struct {
				Nodes []string `json:"nodes"`
			}
			if json.Unmarshal([]byte(out), &res) == nil && slices.Equal(res.Nodes, []string{n.id}) {
				return
			}
		}
		select {
		case <-n.exited:
			t.Fatalf("corrald exited before it was ready (%v)", n.cmd.ProcessState)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("corrald not ready within %v; last corralctl nodes: %v %s", waitReady, err, out)
		}
	}
}

// stop sends SIGTERM (once) and checks that corrald exits 0 within
// waitExit and leaves no socket file behind.
func (n *node) stop(t testing.TB) {
	t.Helper()
	n.stopOnce.Do(func() {
		if err := n.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			t.Errorf("cannot signal corrald: %v", err)
		}
		select {
		case <-n.exited:
		case <-time.After(waitExit):
			// SIGQUIT has the Go runtime write every goroutine's stack to
			// the log: where the shutdown hangs.
			_ = n.cmd.Process.Signal(syscall.SIGQUIT)
			select {
			case <-n.exited:
			case <-time.After(2 * time.Second):
				n.cmd.Process.Kill()
				<-n.exited
			}
			t.Errorf("corrald still running %v after SIGTERM; sent SIGQUIT (its goroutines are in its log)", waitExit)
			return
		}
		if code := n.cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("corrald exited with %v, want exit status 0", n.cmd.ProcessState)
		}
		socks, _ := filepath.Glob(filepath.Join(n.dataDir, "sock", "*.sock"))
		if len(socks) > 0 {
			t.Errorf("corrald left socket files behind: %v", socks)
		}
	})
}

// stopTogether stops nodes with SIGTERM, all at once (one by one, the
// last of a cluster would stop without a JetStream quorum), as stop does,
// but reports instead of failing: how many exited 0 within waitExit, and
// what the others did, with the line of their logs that tells why (the
// relay's last "sending again", or the last line).
func stopTogether(nodes []*node) (int, []string) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	ok := 0
	var notes []string
	for _, n := range nodes {
		wg.Go(func() {
			n.stopOnce.Do(func() {
				start := time.Now()
				_ = n.cmd.Process.Signal(syscall.SIGTERM)
				var note string
				select {
				case <-n.exited:
					if code := n.cmd.ProcessState.ExitCode(); code == 0 {
						mu.Lock()
						ok++
						mu.Unlock()
						return
					}
					note = fmt.Sprintf("%s: %v after %v", n.id, n.cmd.ProcessState, time.Since(start).Round(time.Millisecond))
				case <-time.After(waitExit):
					_ = n.cmd.Process.Kill()
					<-n.exited
					note = fmt.Sprintf("%s: still running %v after SIGTERM (killed)", n.id, waitExit)
				}
				b, _ := os.ReadFile(n.logPath)
				lines := strings.Split(strings.TrimSpace(string(b)), "\n")
				why := lines[len(lines)-1]
				for i := len(lines) - 1; i >= 0; i-- {
					if strings.Contains(lines[i], "sending again events not confirmed stored") {
						why = lines[i]
						break
					}
				}
				mu.Lock()
				notes = append(notes, note+"; its log says: "+why)
				mu.Unlock()
			})
		})
	}
	wg.Wait()
	slices.Sort(notes)
	return ok, notes
}

func (n *node) dumpLogs(t testing.TB) {
	if b, err := os.ReadFile(n.logPath); err == nil {
		t.Logf("corrald output:\n%s", b)
	}
	logs, _ := filepath.Glob(filepath.Join(n.dataDir, "logs", "*.log"))
	for _, p := range logs {
		if b, err := os.ReadFile(p); err == nil {
			t.Logf("%s:\n%s", filepath.Base(p), b)
		}
	}
}

// runCtl runs corralctl against the node and returns its stdout, or an
// error carrying its stderr.
func (n *node) runCtl(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	all := append(append([]string{"--server", n.url}, n.ctlArgs...), args...)
	argv := n.argv(bin("corralctl"), all...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Env = programEnv()
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("corralctl %s: %w: %s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return stdout.String(), nil
}

// ctl is runCtl that fails the test on an error.
func (n *node) ctl(t testing.TB, args ...string) string {
	t.Helper()
	out, err := n.runCtl(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// process is the part of ManagedProcess the tests read.
type process struct {
	ID             string          `json:"id"`
	Name           string          `json:"name"`
	Node           string          `json:"node"`
	Status         string          `json:"status"`
	PID            int             `json:"pid"`
	ExitCode       *int            `json:"exitCode"`
	Error          string          `json:"error"`
	Metadata       json.RawMessage `json:"metadata"`
	SocketPath     string          `json:"socketPath"`
	Instance       string          `json:"instance"`
	Service        string          `json:"service"`
	RestartPending bool            `json:"restartPending"`
	Held           bool            `json:"held"`
}

func exitCode(code *int) string {
	if code == nil {
		return "null"
	}
	return fmt.Sprint(*code)
}

// spawn runs corralctl spawn NAME --meta META and returns the new process.
func (n *node) spawn(t testing.TB, name, meta string) process {
	t.Helper()
	var p process
	decode(t, n.ctl(t, "spawn", name, "--meta", meta, "--json"), &p)
	if p.ID == "" || p.Name != name || p.Node != n.id || p.PID <= 0 {
		t.Fatalf("spawn %s: got %+v", name, p)
	}
	return p
}

// listAll runs corralctl ps --all --json.
func (n *node) listAll(t testing.TB) []process {
	t.Helper()
	var res struct {
		Processes []process `json:"processes"`
		Nodes     []string  `json:"nodes"`
	}
	decode(t, n.ctl(t, "ps", "--all", "--json"), &res)
	if !slices.Equal(res.Nodes, []string{n.id}) {
		t.Errorf("ps nodes = %v, want [%s]", res.Nodes, n.id)
	}
	return res.Processes
}

// waitLog polls corralctl logs ID until the process's output contains want.
func (n *node) waitLog(t testing.TB, id, want string) {
	t.Helper()
	var out string
	if !await.Poll(waitEvent, func() bool {
		out = n.ctl(t, "logs", id)
		return strings.Contains(out, want)
	}) {
		t.Fatalf("the log of %s has no %q within %v:\n%s", id, want, waitEvent, out)
	}
}

func decode(t testing.TB, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("cannot decode %q: %v", s, err)
	}
}

// events records everything published on process.> from the moment watch
// returns.
type events struct {
	mu   sync.Mutex
	msgs []*nats.Msg
	more chan struct{} // closed (and replaced) when a message arrives
}

func watch(t testing.TB, url string, opts ...nats.Option) *events {
	t.Helper()
	nc, err := nats.Connect(url, append([]nats.Option{nats.Name("e2e")}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	e := &events{more: make(chan struct{})}
	if _, err := nc.Subscribe("process.>", e.add); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil { // the subscription is in place
		t.Fatal(err)
	}
	return e
}

func (e *events) add(m *nats.Msg) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.msgs = append(e.msgs, m)
	close(e.more)
	e.more = make(chan struct{})
}

// waitFor returns the first message, past or future, on subject about the
// process id (any process when id is empty) for which match (nil: any)
// holds.
func (e *events) waitFor(t testing.TB, subject, id string, match func(map[string]any) bool) *nats.Msg {
	t.Helper()
	timeout := time.NewTimer(waitEvent)
	defer timeout.Stop()
	for i := 0; ; {
		e.mu.Lock()
		msgs, more := e.msgs, e.more
		e.mu.Unlock()
		for ; i < len(msgs); i++ {
			m := msgs[i]
			if m.Subject != subject || (id != "" && m.Header.Get("Corral-Process-Id") != id) {
				continue
			}
			if match == nil || match(payload(t, m)) {
				return m
			}
		}
		select {
		case <-more:
		case <-timeout.C:
			t.Fatalf("no matching message on %s about %q within %v; seen:\n%s", subject, id, waitEvent, e.dump())
			return nil
		}
	}
}

// about returns the messages about process id so far, in order, leaving
// out heartbeats and stats, whose timing is the client's.
func (e *events) about(id string) []*nats.Msg {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []*nats.Msg
	for _, m := range e.msgs {
		if m.Header.Get("Corral-Process-Id") != id || m.Subject == "process.heartbeat" || strings.HasSuffix(m.Subject, ".stats") {
			continue
		}
		out = append(out, m)
	}
	return out
}

func (e *events) dump() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var b strings.Builder
	for _, m := range e.msgs {
		fmt.Fprintf(&b, "  %s %s\n", m.Subject, m.Data)
	}
	return b.String()
}

// payload decodes a message's JSON object.
func payload(t testing.TB, m *nats.Msg) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(m.Data, &v); err != nil {
		t.Fatalf("%s: payload %q is not a JSON object: %v", m.Subject, m.Data, err)
	}
	return v
}

// checkHeaders checks the Corral-* and Nats-Msg-Id headers of a message
// about a process.
func checkHeaders(t testing.TB, m *nats.Msg, nodeID, id, name string) {
	t.Helper()
	for key, want := range map[string]string{"Corral-Node": nodeID, "Corral-Process-Id": id, "Corral-Process-Name": name} {
		if got := m.Header.Get(key); got != want {
			t.Errorf("%s: header %s = %q, want %q", m.Subject, key, got, want)
		}
	}
	if m.Header.Get("Nats-Msg-Id") == "" {
		t.Errorf("%s: no Nats-Msg-Id header", m.Subject)
	}
}

// gone reports whether no process has the pid any more.
func gone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}
