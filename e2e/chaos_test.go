package e2e_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus/control"
	"github.com/corral-run/corral/internal/await"
)

// The chaos test (make chaos): three nodes, about 300 children emitting
// acked events, and for CHAOS_DURATION a kill -9 every few seconds: of a
// node (started again a few seconds later), of a child, and in the
// external mode (CHAOS_MODE=external: the nodes use three nats-server
// processes of their own) of a NATS server. Then it checks what must hold
// whatever happened, prints a table, and fails when a check fails:
//   - every acked event is stored in CORRAL_EVENTS once: none lost, none
//     stored twice (by process id and seq);
//   - no process is supervised twice (listed by two nodes, or running as
//     two OS processes), and none is an orphan (a child carrying a node's
//     mark that no node lists with its pid);
//   - the watchdog killed no child for silence while the child's own
//     journal says it was connected and sending heartbeats;
//   - every process that ever ran is listed by ps --all, from every node;
//   - ps agrees on every node within 5 s once the chaos stops, and the
//     service is back at its desired count.
//
// Settings (environment): CORRAL_CHAOS=1 runs it; CHAOS_DURATION (a Go
// duration, default 5m), CHAOS_MODE (embedded or external), CHAOS_PROCS
// (default 300), CHAOS_SEED (default: random; printed).

// chaosSettings are the test's knobs.
type chaosSettings struct {
	duration time.Duration
	mode     string // "embedded" or "external"
	procs    int
	seed     uint64
}

func chaosFromEnv(t *testing.T) chaosSettings {
	t.Helper()
	s := chaosSettings{duration: 5 * time.Minute, mode: "embedded", procs: 300, seed: rand.Uint64()}
	if v := os.Getenv("CHAOS_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("CHAOS_DURATION=%q: want a Go duration such as 60s or 5m", v)
		}
		s.duration = d
	}
	if v := os.Getenv("CHAOS_MODE"); v != "" {
		if v != "embedded" && v != "external" {
			t.Fatalf("CHAOS_MODE=%q: want embedded or external", v)
		}
		s.mode = v
	}
	if v := os.Getenv("CHAOS_PROCS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 10 {
			t.Fatalf("CHAOS_PROCS=%q: want a number, 10 or more", v)
		}
		s.procs = n
	}
	if v := os.Getenv("CHAOS_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("CHAOS_SEED=%q: want a number", v)
		}
		s.seed = n
	}
	return s
}

// The chaos cluster's timing.
const (
	chaosBeat             = time.Second      // the nodes' heartbeat interval
	chaosChildBeat        = time.Second      // the emitters' heartbeat
	chaosHeartbeatTimeout = 10 * time.Second // stale after it, killed after twice
	chaosServiceSize      = 30               // instances of the service "workers"
)

const chaosEmitter = `
[processes.emitter]
command = %q
stop_timeout = "5s"
heartbeat_timeout = %q
auto_restart = true
max_restarts = -1
restart_delay = "1s"
restart_delay_max = "5s"
env = { EMITTER_DIR = %q, EMITTER_INTERVAL = "1s", EMITTER_HEARTBEAT = %q, EMITTER_JOURNAL = "1" }

[processes.emitter.events.tick]
type = "object"
required = ["seq"]
properties = { seq = { type = "integer" } }
`

// chaos is one run.
type chaos struct {
	t      *testing.T
	set    chaosSettings
	dir    string // everything of the run: data, logs, acks
	ackDir string
	ids    []string
	nodes  []*node // the running corrald of each id (nil while killed)
	logs   []string
	starts map[string]int // corrald starts by id, for log names

	servers []*natsProc // external mode

	spawned  []string // process ids the test spawned
	kills    map[string]int
	killLog  []string
	childBad []string // children the test could not kill
}

func TestChaos(t *testing.T) {
	if os.Getenv("CORRAL_CHAOS") != "1" {
		t.Skip("chaos: run with CORRAL_CHAOS=1 (make chaos; CHAOS_DURATION, CHAOS_MODE)")
	}
	set := chaosFromEnv(t)
	dir, err := os.MkdirTemp("", "chaos")
	if err != nil {
		t.Fatal(err)
	}
	c := &chaos{t: t, set: set, dir: dir, ackDir: filepath.Join(dir, "acks"), ids: []string{"a", "b", "c"},
		starts: map[string]int{}, kills: map[string]int{}}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("chaos: the run's data, logs and acks are kept in %s", dir)
			return
		}
		os.RemoveAll(dir)
	})
	if err := os.MkdirAll(c.ackDir, 0o755); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("chaos: mode %s, %v, %d processes, seed %d, in %s\n", set.mode, set.duration, set.procs, set.seed, dir)
	c.start()
	c.populate()
	c.run()
	r := c.check()
	r.print(os.Stdout)
	if a := os.Getenv("CORRAL_ARTIFACTS"); a != "" {
		if os.MkdirAll(a, 0o755) == nil {
			if f, err := os.Create(filepath.Join(a, "chaos-"+set.mode+".txt")); err == nil {
				r.print(f)
				f.Close()
			}
		}
	}
	for _, row := range r.rows {
		if !row.ok {
			t.Errorf("chaos check failed: %s: %s (want %s)", row.check, row.value, row.want)
		}
	}
}

// --- the cluster -----------------------------------------------------------

// start starts the servers (external mode) and the nodes, and waits until
// each node sees the three.
func (c *chaos) start() {
	t := c.t
	n := len(c.ids)
	ports := freePorts(t, 2*n)
	clientPorts, clusterPorts := ports[:n], ports[n:]
	var routes []string
	for i := range c.ids {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", clusterPorts[i]))
	}
	quoted := func(ss []string) string {
		var q []string
		for _, s := range ss {
			q = append(q, strconv.Quote(s))
		}
		return strings.Join(q, ", ")
	}
	var urls []string
	if c.set.mode == "external" {
		exe := filepath.Join(workDir, "bin", "nats-server")
		args := []string{"build", "-o", exe}
		if raceEnabled {
			args = append(args, "-race")
		}
		build := exec.Command("go", append(args, "./internal/natsserver")...)
		build.Dir = repoDir
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("cannot build nats-server: %v\n%s", err, out)
		}
		// Registered before any node starts, so it runs after every node
		// stopped: a node stops cleanly only while JetStream has a quorum.
		t.Cleanup(func() {
			for _, s := range c.servers {
				s.stop()
			}
		})
		for i, id := range c.ids {
			s := &natsProc{name: "s" + id, logPath: filepath.Join(c.dir, "nats-"+id+".log"), args: []string{
				"-a", "127.0.0.1", "-p", strconv.Itoa(clientPorts[i]), "-n", "s" + id, "-js", "-sd", filepath.Join(c.dir, "nats-"+id),
				"-cluster_name", "chaos", "-cluster", routes[i], "-routes", strings.Join(routes, ","),
			}}
			s.start(t, exe)
			c.servers = append(c.servers, s)
			urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", clientPorts[i]))
		}
	}
	for i, id := range c.ids {
		dataDir := filepath.Join(c.dir, id)
		var natsTOML string
		url := fmt.Sprintf("nats://127.0.0.1:%d", clientPorts[i])
		if c.set.mode == "external" {
			natsTOML = fmt.Sprintf("[nats]\nurl = %q\n", strings.Join(urls, ","))
		} else {
			natsTOML = fmt.Sprintf("[nats]\nlisten = \"127.0.0.1:%d\"\n\n[nats.cluster]\nname = \"chaos\"\nlisten = \"127.0.0.1:%d\"\nroutes = [%s]\n",
				clientPorts[i], clusterPorts[i], quoted(routes))
		}
		cfg := fmt.Sprintf(`
[node]
id = %q
data_dir = %q
heartbeat_interval = %q
log_level = "info"
retention_max = 100000

%s
[processes.sleeper]
command = "sleep"
args = ["600"]
heartbeat_timeout = "0s"
stop_timeout = "2s"
`, id, dataDir, chaosBeat.String(), natsTOML) + fmt.Sprintf(chaosEmitter, bin("emitter"), chaosHeartbeatTimeout.String(), c.ackDir, chaosChildBeat.String())
		cfgPath := filepath.Join(c.dir, id+".toml")
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		c.nodes = append(c.nodes, &node{id: id, cfgPath: cfgPath, dataDir: dataDir, url: url, port: clientPorts[i], quiet: true})
	}
	for i := range c.ids {
		c.launch(i)
	}
	for _, n := range c.nodes {
		n.waitCluster(t, c.ids)
	}
}

// launch starts node i's corrald (again), logging to a file of its own.
func (c *chaos) launch(i int) {
	id := c.ids[i]
	c.starts[id]++
	old := c.nodes[i]
	n := &node{id: id, cfgPath: old.cfgPath, dataDir: old.dataDir, url: old.url, port: old.port, quiet: true,
		logPath: filepath.Join(c.dir, fmt.Sprintf("corrald-%s-%d.log", id, c.starts[id]))}
	c.logs = append(c.logs, n.logPath)
	n.start(c.t)
	c.nodes[i] = n
}

// natsProc is a nats-server process (external mode).
type natsProc struct {
	name, logPath string
	args          []string
	cmd           *exec.Cmd
	exited        chan struct{}
}

func (s *natsProc) start(t testing.TB, exe string) {
	t.Helper()
	f, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(exe, s.args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	s.cmd, s.exited = cmd, exited
}

// stop stops the server with SIGTERM (SIGKILL after 10 s).
func (s *natsProc) stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		s.kill()
	}
}

func (s *natsProc) kill() {
	_ = s.cmd.Process.Kill()
	<-s.exited
}

// --- the processes -------------------------------------------------------

// populate applies the service and spawns the other emitters, spread over
// the nodes, and waits until every one acked an event.
func (c *chaos) populate() {
	t := c.t
	a := c.nodes[0]
	a.apply(t, fmt.Sprintf("[services.workers]\nprocess = \"emitter\"\ninstances = %d\nmax_per_node = %d\n",
		chaosServiceSize, chaosServiceSize/2))
	ctl, done := c.control(0)
	defer done()
	plain := c.set.procs - chaosServiceSize
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	var failures []string
	for k := range plain {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			p, err := ctl.Spawn(ctx, c.ids[k%len(c.ids)], "emitter", api.SpawnRequest{})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failures = append(failures, err.Error())
				return
			}
			c.spawned = append(c.spawned, p.ID)
		}()
	}
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("cannot spawn %d of %d emitters: %s", len(failures), plain, failures[0])
	}
	t0 := time.Now()
	if !await.Poll(2*time.Minute, func() bool { return len(c.ackFiles()) >= c.set.procs }) {
		t.Fatalf("only %d of %d emitters acked an event within 2 minutes", len(c.ackFiles()), c.set.procs)
	}
	fmt.Printf("chaos: %d emitters running (%d of them the service's), all emitting, %v after the spawns\n",
		c.set.procs, chaosServiceSize, time.Since(t0).Round(time.Millisecond))
}

// control is a control client on a connection to node i's server.
func (c *chaos) control(i int) (*control.Control, func()) {
	nc, err := nats.Connect(c.nodes[i].url, nats.MaxReconnects(-1))
	if err != nil {
		c.t.Fatal(err)
	}
	return control.New(nc, control.WithTimeout(10*time.Second)), nc.Close
}

// ackFiles are the process ids that have an acks file: every emitter that
// ever connected.
func (c *chaos) ackFiles() []string {
	entries, _ := os.ReadDir(c.ackDir)
	var ids []string
	for _, e := range entries {
		if id, ok := strings.CutSuffix(e.Name(), ".acked"); ok {
			ids = append(ids, id)
		}
	}
	return ids
}

// child is a live child of the run, as /proc shows it.
type child struct {
	pid  int
	id   string // DONKEYLABS_PROCESS_ID
	mark string // CORRAL_NODE_MARK
}

// children lists the live process-group leaders that carry this run's
// EMITTER_DIR: the run's emitters.
func (c *chaos) children() []child {
	entries, _ := os.ReadDir("/proc")
	want := []byte("EMITTER_DIR=" + c.ackDir + "\x00")
	var out []child
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if pgid, err := syscall.Getpgid(pid); err != nil || pgid != pid {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil || !bytes.Contains(env, want) {
			continue
		}
		if stat, err := os.ReadFile("/proc/" + e.Name() + "/stat"); err == nil && bytes.Contains(stat, []byte(") Z ")) {
			continue // a zombie its node has not reaped yet
		}
		ch := child{pid: pid}
		for kv := range bytes.SplitSeq(env, []byte{0}) {
			k, v, _ := bytes.Cut(kv, []byte{'='})
			switch string(k) {
			case "DONKEYLABS_PROCESS_ID":
				ch.id = string(v)
			case "CORRAL_NODE_MARK":
				ch.mark = string(v)
			}
		}
		out = append(out, ch)
	}
	return out
}

// --- the chaos -------------------------------------------------------------

// run kills at random for the run's duration: every 2 to 4 s, a node
// (a third of the time, in external mode a NATS server as often) or else a
// child. At most one node or server is down at a time, started again 3 to
// 6 s after its kill. Then everything is started again.
func (c *chaos) run() {
	rng := rand.New(rand.NewPCG(c.set.seed, c.set.seed^0x9e3779b97f4a7c15))
	start := time.Now()
	end := start.Add(c.set.duration)
	type downThing struct {
		node, server int // index, or -1
		back         time.Time
	}
	var down *downThing
	bringBack := func() {
		if down.node >= 0 {
			c.launch(down.node)
			c.logAction("start node %s", c.ids[down.node])
		} else {
			s := c.servers[down.server]
			s.start(c.t, filepath.Join(workDir, "bin", "nats-server"))
			c.logAction("start server %s", s.name)
		}
		down = nil
	}
	next := start.Add(2 * time.Second)
	for time.Now().Before(end) {
		wake := next
		if down != nil && down.back.Before(wake) {
			wake = down.back
		}
		time.Sleep(time.Until(wake))
		now := time.Now()
		if down != nil && !now.Before(down.back) {
			bringBack()
		}
		if now.Before(next) {
			continue
		}
		next = now.Add(2*time.Second + time.Duration(rng.Int64N(int64(2*time.Second))))
		roll := rng.Float64()
		switch {
		case down == nil && roll < 1.0/3:
			i := rng.IntN(len(c.nodes))
			c.nodes[i].kill9(c.t)
			c.kills["node"]++
			c.logAction("kill -9 node %s", c.ids[i])
			down = &downThing{node: i, server: -1, back: now.Add(3*time.Second + time.Duration(rng.Int64N(int64(3*time.Second))))}
		case down == nil && c.set.mode == "external" && roll < 2.0/3:
			i := rng.IntN(len(c.servers))
			c.servers[i].kill()
			c.kills["server"]++
			c.logAction("kill -9 server %s", c.servers[i].name)
			down = &downThing{node: -1, server: i, back: now.Add(3*time.Second + time.Duration(rng.Int64N(int64(3*time.Second))))}
		default:
			kids := c.children()
			if len(kids) == 0 {
				continue
			}
			k := kids[rng.IntN(len(kids))]
			if err := syscall.Kill(k.pid, syscall.SIGKILL); err != nil {
				c.childBad = append(c.childBad, fmt.Sprintf("%s: %v", k.id, err))
				continue
			}
			c.kills["child"]++
			c.logAction("kill -9 child %s (pid %d)", k.id, k.pid)
		}
	}
	if down != nil {
		bringBack()
	}
	fmt.Printf("chaos: %v of chaos: %d node kills, %d server kills, %d child kills\n",
		time.Since(start).Round(time.Second), c.kills["node"], c.kills["server"], c.kills["child"])
}

func (c *chaos) logAction(format string, args ...any) {
	line := time.Now().Format("15:04:05.000") + " " + fmt.Sprintf(format, args...)
	c.killLog = append(c.killLog, line)
	if testing.Verbose() {
		fmt.Println("chaos:", line)
	}
}
