package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/corral-run/corral/internal/await"
)

// partitionEmitter is the emitter of the partition test: 50 acked events
// a second, its heartbeats journaled.
const partitionEmitter = `
[processes.emitter]
command = %q
stop_timeout = "5s"
heartbeat_timeout = "10s"
env = { EMITTER_DIR = %q, EMITTER_INTERVAL = "20ms", EMITTER_JOURNAL = "1" }

[processes.emitter.events.tick]
type = "object"
required = ["seq"]
properties = { seq = { type = "integer" } }
`

// startFabricCluster starts nodes a, b and c, each in its namespace of a
// fabric, their embedded NATS servers clustered over the fabric's
// addresses, and waits until each sees the three alive and durable.
func startFabricCluster(t *testing.T, f *fabric, ackDir string) []*node {
	t.Helper()
	ids := []string{"a", "b", "c"}
	var routes []string
	for _, id := range ids {
		routes = append(routes, fmt.Sprintf("%q", "nats://"+f.addrs[id]+":6222"))
	}
	var nodes []*node
	for _, id := range ids {
		// The listeners are on the fabric's private addresses, which
		// nobody else reaches: no users needed.
		toml := fmt.Sprintf(`
[nats]
listen = "%s:4222"
insecure = true

[nats.cluster]
name = "partition"
listen = "%s:6222"
routes = [%s]
`, f.addrs[id], f.addrs[id], strings.Join(routes, ", ")) + fmt.Sprintf(partitionEmitter, bin("emitter"), ackDir)
		n := clusterNode(t, id, map[string]string{"zone": id}, toml)
		n.fab, n.url = f, "nats://"+f.addrs[id]+":4222"
		nodes = append(nodes, n)
	}
	for _, n := range nodes {
		n.start(t)
	}
	for _, n := range nodes {
		n.waitCluster(t, ids)
	}
	return nodes
}

// TestPartition cuts one node of three off the network and heals it: the
// majority declares it lost once and runs the services without it, the
// cut-off node says it is isolated and keeps its children, and after the
// heal every child is listed once, every service instance runs once, and
// every acked event is stored once.
func TestPartition(t *testing.T) {
	needFabric(t)
	f := newFabric(t, []string{"a", "b", "c"})
	ackDir := t.TempDir()
	nodes := startFabricCluster(t, f, ackDir)
	a, c := nodes[0], nodes[2]

	// Two emitters on each node, and a service of six instances.
	var emitters []process
	for _, n := range nodes {
		for range 2 {
			var p process
			decode(t, a.ctl(t, "--json", "spawn", "emitter", "--node", n.id), &p)
			emitters = append(emitters, p)
		}
	}
	a.apply(t, "[services.web]\nprocess = \"sleeper\"\ninstances = 6\nmax_per_node = 3\n")
	placed := a.waitPlaced(t, "web", 6, 20*time.Second)
	for _, p := range emitters {
		waitAcked(t, ackDir, p.ID, 20)
	}
	ev := watch(t, a.url, f.dialer("a"))

	// Cut c off.
	f.cut("c")
	cutAt := time.Now()
	t.Log("c is cut off")
	ev.waitFor(t, "process.node_lost", "", func(p map[string]any) bool { return p["node"] == "c" })
	lossTook := time.Since(cutAt)
	t.Logf("FIGURE c declared lost %v after the cut (heartbeat interval %v)", lossTook.Round(time.Millisecond), heartbeatInterval)

	// The majority runs web's six instances without c.
	moved := a.waitPlaced(t, "web", 6, 20*time.Second)
	if pn := perNode(moved); pn["c"] != 0 || pn["a"]+pn["b"] != 6 {
		t.Errorf("during the partition a sees web placed %v, want six on a and b", pn)
	}
	replacedAt := time.Since(cutAt)
	t.Logf("FIGURE web's six instances running on the majority %v after the cut", replacedAt.Round(time.Millisecond))

	// c says it is isolated: in its log, and in corralctl nodes asked of it.
	var out string
	if !await.Poll(10*time.Second, func() bool {
		var err error
		out, err = c.runCtl("--timeout", "3s", "nodes")
		if err != nil {
			return false
		}
		for line := range strings.Lines(out) {
			if fs := strings.Fields(line); len(fs) > 0 && fs[0] == "c" && fs[len(fs)-1] == "isolated" {
				return true
			}
		}
		return false
	}) {
		t.Errorf("corralctl nodes against c does not say c is isolated:\n%s", out)
	}
	if log, _ := os.ReadFile(c.logPath); !strings.Contains(string(log), "isolated: this node sees fewer than half") {
		t.Error("c's log does not say it is isolated")
	}
	// And its /readyz (reached from inside its namespace) says so too.
	readyz := func() (int, string) {
		log, _ := os.ReadFile(c.logPath)
		m := regexp.MustCompile(`msg="HTTP gateway listening" .*?url=(\S+)`).FindStringSubmatch(string(log))
		if m == nil {
			return 0, "no HTTP gateway in c's log"
		}
		hc := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{
			DialContext: func(_ context.Context, network, addr string) (net.Conn, error) {
				return nsDialer{path: "/run/netns/" + f.ns("c")}.Dial(network, addr)
			}}}
		resp, err := hc.Get(m[1] + "/readyz")
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	var code int
	var body string
	if !await.Poll(10*time.Second, func() bool {
		code, body = readyz()
		return code == http.StatusServiceUnavailable && strings.Contains(body, "isolated")
	}) {
		t.Errorf("c's /readyz while it is isolated: %d %s, want 503 saying it is isolated", code, body)
	}

	// c keeps its children: its emitters and its instances of web.
	time.Sleep(2 * time.Second) // hold the partition through a few reconciler passes
	onC := map[string]int{}     // pid of c's children, by id
	for _, p := range emitters {
		if p.Node == "c" {
			onC[p.ID] = p.PID
		}
	}
	res, err := c.psAll()
	if err != nil {
		t.Fatalf("ps against c while it is isolated: %v", err)
	}
	for _, p := range res.Processes {
		if p.Node == "c" && p.Service == "web" {
			onC[p.ID] = p.PID
		}
	}
	for inst, ns := range placed {
		if ns[0] == "c" && !slices.ContainsFunc(res.Processes, func(p process) bool { return p.Instance == inst && p.Status == "running" }) {
			t.Errorf("c no longer runs its instance %s while isolated", inst)
		}
	}
	for id, pid := range onC {
		if gone(pid) {
			t.Errorf("c's child %s (pid %d) died during the partition", id, pid)
		}
	}
	placedBefore := countInLogs(nodes, "service instance placed")

	// Heal.
	f.heal("c")
	healAt := time.Now()
	t.Log("c is back on the network")
	var why string
	if !await.Poll(60*time.Second, func() bool {
		why = converged(nodes, emitters)
		return why == ""
	}) {
		t.Fatalf("not converged 60 s after the heal: %s", why)
	}
	convergeTook := time.Since(healAt)
	t.Logf("FIGURE converged %v after the heal (every node sees the three, lists every child once, web's six instances once each)",
		convergeTook.Round(time.Millisecond))

	// Nothing placed after the heal: the majority's instances stay, c's
	// older copies are stopped.
	time.Sleep(2 * time.Second)
	if why := converged(nodes, emitters); why != "" {
		t.Errorf("2 s after converging: %s", why)
	}
	if placedAfter := countInLogs(nodes, "service instance placed") - placedBefore; placedAfter != 0 {
		t.Errorf("%d service instances placed after the heal, want 0", placedAfter)
	}
	if !await.Poll(10*time.Second, func() bool { code, body = readyz(); return code == http.StatusOK }) {
		t.Errorf("c's /readyz after the heal: %d %s, want 200", code, body)
	}
	for _, p := range emitters {
		if gone(p.PID) {
			t.Errorf("emitter %s of %s (pid %d) died", p.ID, p.Node, p.PID)
		}
	}
	// Once: one message id (one per node life), and one declaration in
	// the logs (the message id would hide a second declaration of c's
	// life after the heal).
	if n, others := ev.lostAnnouncements("c"), ev.lostAnnouncements("a")+ev.lostAnnouncements("b"); n != 1 || others != 0 {
		t.Errorf("%d process.node_lost for c and %d for a or b, want exactly 1 and none", n, others)
	}
	if n := countInLogs(nodes, "node lost: no heartbeat"); n != 1 {
		t.Errorf("%d declarations of a loss in the nodes' logs, want 1", n)
	}
	for _, n := range nodes {
		if killed := countIn(n.logPath, "watchdog is killing process"); killed != 0 {
			t.Errorf("node %s's watchdog killed %d children", n.id, killed)
		}
	}

	// Every acked event stored once.
	a.ctl(t, "stop", "--all", "--name", "emitter")
	stored := storedTicks(t, a.url, f.dialer("a"))
	total := 0
	for _, p := range emitters {
		seqs := acked(t, ackDir, p.ID)
		total += len(seqs)
		lostN, dup := 0, 0
		for _, seq := range seqs {
			switch c := stored[p.ID][seq]; {
			case c == 0:
				lostN++
			case c > 1:
				dup++
			}
		}
		for seq, c := range stored[p.ID] {
			if c > 1 && !slices.Contains(seqs, seq) {
				dup++
			}
		}
		if lostN != 0 || dup != 0 {
			t.Errorf("emitter %s on %s: %d acked events lost, %d stored twice", p.ID, p.Node, lostN, dup)
		}
	}
	// The nodes stop, none hangs. A node whose children's events still
	// wait for storage when it stops (the stream may still be catching
	// up after the heal) exits 1 after its flush timeout, as README says;
	// anything else is a failure.
	if stopped, notes := stopTogether(nodes); stopped != len(nodes) {
		for _, n := range nodes {
			if n.cmd.ProcessState.ExitCode() == 1 && countIn(n.logPath, "cannot flush relay") > 0 {
				stopped++
			}
		}
		if stopped != len(nodes) {
			t.Errorf("%d of %d nodes stopped cleanly (exit 0 within %v of SIGTERM, or 1 with unstored events):\n%s",
				stopped, len(nodes), waitExit, strings.Join(notes, "\n"))
		} else {
			t.Logf("nodes that exited 1, with events their stream had not confirmed stored:\n%s", strings.Join(notes, "\n"))
		}
	}
	t.Logf("FIGURE %d acked events from %d emitters, each stored once; loss declared in %v, converged in %v after the heal",
		total, len(emitters), lossTook.Round(time.Millisecond), convergeTook.Round(time.Millisecond))
}

// psAll is ps --all --json, asked of n, as an error rather than a failure.
func (n *node) psAll() (listResult, error) {
	var res listResult
	out, err := n.runCtl("--timeout", "3s", "--json", "ps", "--all")
	if err == nil {
		err = json.Unmarshal([]byte(out), &res)
	}
	return res, err
}

// converged says what is not yet as it should be after the heal, "" when
// all is: from every node, the three alive and none isolated, every
// emitter listed once and running on its node, and web's six instances
// running once each.
func converged(nodes []*node, emitters []process) string {
	for _, n := range nodes {
		out, err := n.runCtl("--timeout", "3s", "--json", "nodes")
		if err != nil {
			return fmt.Sprintf("nodes from %s: %v", n.id, err)
		}
		var infos []struct {
			ID       string `json:"id"`
			Gone     bool   `json:"gone"`
			Isolated bool   `json:"isolated"`
		}
		if err := json.Unmarshal([]byte(out), &infos); err != nil || len(infos) != 3 {
			return fmt.Sprintf("nodes from %s: %s", n.id, out)
		}
		for _, i := range infos {
			if i.Gone || i.Isolated {
				return fmt.Sprintf("nodes from %s: %s gone %v isolated %v", n.id, i.ID, i.Gone, i.Isolated)
			}
		}
		res, err := n.psAll()
		if err != nil {
			return fmt.Sprintf("ps from %s: %v", n.id, err)
		}
		if len(res.Missing) > 0 {
			return fmt.Sprintf("ps from %s: missing %v", n.id, res.Missing)
		}
		for _, e := range emitters {
			var seen []process
			for _, p := range res.Processes {
				if p.ID == e.ID {
					seen = append(seen, p)
				}
			}
			if len(seen) != 1 || seen[0].Status != "running" || seen[0].Node != e.Node {
				return fmt.Sprintf("ps from %s lists emitter %s of %s as %+v", n.id, e.ID, e.Node, seen)
			}
		}
		web := map[string]int{}
		for _, p := range res.Processes {
			if p.Service == "web" && p.Status == "running" {
				web[p.Instance]++
			}
		}
		for k := range 6 {
			if web[fmt.Sprintf("web/%d", k)] != 1 {
				return fmt.Sprintf("ps from %s: web instances %v, want each of six once", n.id, web)
			}
		}
		if len(web) != 6 {
			return fmt.Sprintf("ps from %s: web instances %v", n.id, web)
		}
	}
	return ""
}

// countInLogs counts the lines of the nodes' logs that contain s.
func countInLogs(nodes []*node, s string) int {
	total := 0
	for _, n := range nodes {
		total += countIn(n.logPath, s)
	}
	return total
}

func countIn(path, s string) int {
	b, _ := os.ReadFile(path)
	return strings.Count(string(b), s)
}
