package e2e_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/corral-run/corral/internal/await"
)

// serviceView is what the tests read of corralctl services --json.
type serviceView struct {
	Service string         `json:"service"`
	Desired int            `json:"desired"`
	Running int            `json:"running"`
	Nodes   map[string]int `json:"nodes"`
}

// instancesOf maps each instance of service to the nodes it runs on (as
// ps of the live nodes shows them).
func (n *node) instancesOf(t testing.TB, service string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, p := range n.ps(t, "--service", service).Processes {
		if p.Status == "running" {
			out[p.Instance] = append(out[p.Instance], p.Node)
		}
	}
	return out
}

// waitPlaced waits until service has exactly want instances, each running
// once, and returns where.
func (n *node) waitPlaced(t testing.TB, service string, want int, within time.Duration) map[string][]string {
	t.Helper()
	var got map[string][]string
	if !await.Poll(within, func() bool {
		got = n.instancesOf(t, service)
		if len(got) != want {
			return false
		}
		for k := range want {
			if len(got[fmt.Sprintf("%s/%d", service, k)]) != 1 {
				return false
			}
		}
		return true
	}) {
		t.Fatalf("%s: instances %v, want %d each running once (within %v)", service, got, want, within)
	}
	return got
}

func perNode(placed map[string][]string) map[string]int {
	out := map[string]int{}
	for _, nodes := range placed {
		for _, n := range nodes {
			out[n]++
		}
	}
	return out
}

// apply applies doc, waiting (a cluster that has just started sets its
// desired state up in the background) until a node answers.
func (n *node) apply(t testing.TB, doc string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "apply.toml")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	var out string
	var err error
	if !await.Poll(waitReady, func() bool {
		out, err = n.runCtl("apply", "-f", path)
		return err == nil || !strings.Contains(err.Error(), "no node answers")
	}) || err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	return out
}

const servicesDoc = `
[services.enc]
process = "sleeper"
instances = 6
max_per_node = 3
metadata = { quality = "high" }

[services.gpu]
process = "sleeper"
instances = 2
labels = { gpu = "yes" }
`

func TestServicesAcrossTheCluster(t *testing.T) {
	nodes := startEmbeddedCluster(t)
	a, c := nodes[0], nodes[2]
	out := a.apply(t, servicesDoc)
	if !strings.Contains(out, "service/enc created") || !strings.Contains(out, "service/gpu created") {
		t.Errorf("apply printed:\n%s", out)
	}
	// enc spreads over the three nodes (the fewest processes first); gpu
	// runs only where gpu=yes (b).
	enc := a.waitPlaced(t, "enc", 6, 10*time.Second)
	if pn := perNode(enc); pn["a"] != 2 || pn["b"] != 2 || pn["c"] != 2 {
		t.Errorf("enc placed %v, want two on each node", pn)
	}
	if pn := perNode(a.waitPlaced(t, "gpu", 2, 10*time.Second)); pn["b"] != 2 {
		t.Errorf("gpu placed %v, want both on b", pn)
	}
	var p process
	decode(t, a.ctl(t, "--json", "get", "enc/0"), &p)
	if !jsonEqual(p.Metadata, `{"quality":"high"}`) || p.Service != "enc" {
		t.Errorf("enc/0 is %+v, want the service's metadata", p)
	}
	var rows []serviceView
	decode(t, a.ctl(t, "--json", "services"), &rows)
	if len(rows) != 2 || rows[0].Service != "enc" || rows[0].Desired != 6 || rows[0].Running != 6 {
		t.Errorf("services: %+v", rows)
	}

	// kill -9 of c: its two instances move to the survivors, at most
	// three per node.
	onC := map[string]bool{}
	for inst, ns := range enc {
		if ns[0] == "c" {
			onC[inst] = true
		}
	}
	lostAt := nodeLostClock(t, a.url, "c")
	c.kill9(t)
	killed := time.Now()
	moved := a.waitPlaced(t, "enc", 6, 3*heartbeatInterval+20*time.Second)
	back := time.Now()
	t.Logf("enc's instances all running again %v after kill -9 of c, %v after process.node_lost (heartbeat interval %v)",
		back.Sub(killed).Round(time.Millisecond), back.Sub(lostAt()).Round(time.Millisecond), heartbeatInterval)
	if pn := perNode(moved); pn["a"] != 3 || pn["b"] != 3 {
		t.Errorf("after c's loss enc is placed %v, want three on a and on b", pn)
	}

	// c comes back with its children (re-adopted): every instance ends up
	// running once.
	c2 := c.restartCluster(t)
	a.waitCluster(t, []string{"a", "b", "c"})
	a.waitPlaced(t, "enc", 6, 10*time.Second)
	if !await.Poll(10*time.Second, func() bool {
		for _, p := range c2.ps(t, "--node", "c", "--service", "enc").Processes {
			if p.Status == "running" && onC[p.Instance] {
				return false
			}
		}
		return true
	}) {
		t.Errorf("c's old instances still run after its return: %+v", c2.ps(t, "--node", "c").Processes)
	}

	// scale and delete.
	a.ctl(t, "scale", "enc", "2")
	a.waitPlaced(t, "enc", 2, 10*time.Second)
	a.ctl(t, "delete", "service", "gpu")
	a.waitPlaced(t, "gpu", 0, 10*time.Second)
	if _, err := a.runCtl("delete", "service", "gpu"); err == nil || !strings.Contains(err.Error(), "there is none") {
		t.Errorf("second delete: %v", err)
	}
	if _, err := a.runCtl("scale", "nothing", "3"); err == nil || !strings.Contains(err.Error(), "no such service") {
		t.Errorf("scale of an unknown service: %v", err)
	}
}

func TestAppliedDefinitionsFollowTheirSelector(t *testing.T) {
	nodes := startEmbeddedCluster(t)
	a := nodes[0]
	a.apply(t, `
[processes.zoned]
command = "sleep"
args = ["600"]
nodes = { zone = "z1" }

[processes.sleeper]
command = "sleep"
args = ["1"]
`)
	type defsReply struct {
		Node        string `json:"node"`
		Definitions []struct {
			Name string   `json:"name"`
			Args []string `json:"args"`
		} `json:"definitions"`
		Shadowed []string `json:"shadowed"`
	}
	var replies []defsReply
	if !await.Poll(10*time.Second, func() bool {
		decode(t, a.ctl(t, "--json", "defs"), &replies)
		zoned := []string{}
		shadowed := 0
		for _, r := range replies {
			for _, d := range r.Definitions {
				if d.Name == "zoned" {
					zoned = append(zoned, r.Node)
				}
			}
			if strings.Join(r.Shadowed, ",") == "sleeper" {
				shadowed++
			}
		}
		sort.Strings(zoned)
		return strings.Join(zoned, ",") == "a" && shadowed == 3
	}) {
		t.Fatalf("zoned is not defined on a alone, or sleeper not shadowed everywhere: %+v", replies)
	}
	if out := a.ctl(t, "defs"); !strings.Contains(out, `does not use the applied definition "sleeper"`) {
		t.Errorf("defs does not say the applied sleeper is overridden:\n%s", out)
	}
	// The node's own sleeper is the one in use.
	for _, r := range replies {
		for _, d := range r.Definitions {
			if d.Name == "sleeper" && strings.Join(d.Args, " ") != "600" {
				t.Errorf("node %s uses sleeper %v, want its own", r.Node, d.Args)
			}
		}
	}
	p := a.spawnOn(t) // sleeper anywhere
	_ = p
	var zp process
	decode(t, a.ctl(t, "--json", "spawn", "zoned"), &zp)
	if zp.Node != "a" {
		t.Errorf("zoned spawned on %s, want a", zp.Node)
	}
	a.ctl(t, "delete", "definition", "zoned")
	if !await.Poll(10*time.Second, func() bool {
		_, err := a.runCtl("spawn", "zoned")
		return err != nil
	}) {
		t.Error("zoned can still be spawned after its deletion")
	}
	// Hostile input: refused whole, with the key named.
	for doc, want := range map[string]string{
		"[services.x]\nprocess = \"sleeper\"\n":                     "services.x.instances is required",
		"[services.x]\nprocess = \"sleeper\"\ninstances = 100000\n": "out of range",
		"[services.\"bad name\"]\nprocess = \"s\"\ninstances = 1\n": "must be 1 to 64 characters",
		"[processes.p]\ncommand = \"x\"\ninstances = 2\n":           "run it as a [services.<name>]",
		"[other]\nx = 1\n": "unknown key",
		"[processes.q]\ncommand = \"x\"\nevents.e = { type = 3 }\n":    "cannot compile schema",
		"[services.y]\nprocess = \"s\"\ninstances = 1\nmetadata = 3\n": "must be a table",
	} {
		path := filepath.Join(t.TempDir(), "bad.toml")
		_ = os.WriteFile(path, []byte(doc), 0o600)
		if _, err := a.runCtl("apply", "-f", path); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("apply of %q: %v, want an error saying %q", doc, err, want)
		}
	}
	var st struct {
		Services []json.RawMessage `json:"services"`
	}
	decode(t, a.ctl(t, "--json", "services"), &st.Services)
	if len(st.Services) != 0 {
		t.Errorf("a refused apply left services: %s", st.Services)
	}
}

func jsonEqual(raw json.RawMessage, want string) bool {
	var a, b any
	return json.Unmarshal(raw, &a) == nil && json.Unmarshal([]byte(want), &b) == nil && fmt.Sprint(a) == fmt.Sprint(b)
}

// nodeLostClock returns a function that waits for process.node_lost of
// node (as a client of url receives it) and returns when it arrived.
func nodeLostClock(t testing.TB, url, node string) func() time.Time {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	ch := make(chan time.Time, 1)
	if _, err := nc.Subscribe("process.node_lost", func(m *nats.Msg) {
		var p struct{ Node string }
		if json.Unmarshal(m.Data, &p) == nil && p.Node == node {
			select {
			case ch <- time.Now():
			default:
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return func() time.Time {
		select {
		case at := <-ch:
			return at
		case <-time.After(30 * time.Second):
			t.Fatalf("no process.node_lost for %s", node)
			return time.Time{}
		}
	}
}

// BenchmarkReschedule measures, on a three-node cluster (heartbeat every
// 250 ms), the time from kill -9 of a node to every instance of a
// six-instance service running again on the survivors, and from the
// process.node_lost that announces the loss.
func BenchmarkReschedule(b *testing.B) {
	var fromKill, fromLost time.Duration
	for range b.N {
		nodes := startEmbeddedCluster(b)
		a, c := nodes[0], nodes[2]
		a.apply(b, "[services.enc]\nprocess = \"sleeper\"\ninstances = 6\n")
		a.waitPlaced(b, "enc", 6, 10*time.Second)
		lostAt := nodeLostClock(b, a.url, "c")
		c.kill9(b)
		killed := time.Now()
		a.waitPlaced(b, "enc", 6, 30*time.Second)
		back := time.Now()
		fromKill += back.Sub(killed)
		fromLost += back.Sub(lostAt())
		for _, n := range nodes { // before the next iteration's cluster starts
			n.stop(b)
		}
	}
	b.ReportMetric(float64(fromKill.Milliseconds())/float64(b.N), "ms-from-kill")
	b.ReportMetric(float64(fromLost.Milliseconds())/float64(b.N), "ms-from-node_lost")
}
