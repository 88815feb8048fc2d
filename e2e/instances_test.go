package e2e_test

import (
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/corral-run/corral/internal/await"
)

const keeperTOML = `
[processes.keeper]
command = "sleep"
args = ["300"]
instances = 2
restart_delay = "100ms"
stop_timeout = "2s"
`

// instances returns the running process of each instance of the node.
func (n *node) instances(t testing.TB) map[string]process {
	t.Helper()
	out := map[string]process{}
	for _, p := range n.listAll(t) {
		if p.Instance != "" && p.Status == "running" {
			if _, dup := out[p.Instance]; dup {
				t.Fatalf("instance %s runs twice", p.Instance)
			}
			out[p.Instance] = p
		}
	}
	return out
}

// waitInstances waits until exactly the named instances run.
func (n *node) waitInstances(t testing.TB, want ...string) map[string]process {
	t.Helper()
	var got map[string]process
	if !await.Poll(waitEvent, func() bool {
		got = n.instances(t)
		var names []string
		for k := range got {
			names = append(names, k)
		}
		slices.Sort(names)
		return slices.Equal(names, want)
	}) {
		t.Fatalf("instances running: %v, want %v", got, want)
	}
	return got
}

func TestInstancesAreKeptRunning(t *testing.T) {
	n := startNodeWith(t, keeperTOML)
	got := n.waitInstances(t, "keeper/0", "keeper/1")
	if ps := n.ctl(t, "ps", "--name", "keeper"); !strings.Contains(ps, "keeper/0") || !strings.Contains(ps, "INSTANCE") {
		t.Errorf("ps does not show the instances:\n%s", ps)
	}

	// kill -9 of one: replaced, same instance name, new id.
	victim := got["keeper/0"]
	if err := syscall.Kill(victim.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var now map[string]process
	if !await.Poll(waitEvent, func() bool {
		now = n.instances(t)
		return now["keeper/0"].ID != "" && now["keeper/0"].ID != victim.ID
	}) {
		t.Fatalf("keeper/0 was not replaced after kill -9: %v", now)
	}
	if now["keeper/1"].ID != got["keeper/1"].ID {
		t.Errorf("keeper/1 changed too: %v → %v", got["keeper/1"].ID, now["keeper/1"].ID)
	}

	// Addressed by its instance name.
	if out := n.ctl(t, "get", "keeper/1", "--json"); !strings.Contains(out, got["keeper/1"].ID) {
		t.Errorf("get keeper/1 printed %s, want %s", out, got["keeper/1"].ID)
	}

	// A clean node restart brings them back.
	n.stop(t)
	m := n.restart(t)
	back := m.waitInstances(t, "keeper/0", "keeper/1")
	for k, p := range back {
		if p.ID == now[k].ID {
			t.Errorf("%s has its old id %s after a clean restart", k, p.ID)
		}
	}
}

func TestStoppedInstanceStaysDownUntilRestarted(t *testing.T) {
	n := startNodeWith(t, keeperTOML)
	got := n.waitInstances(t, "keeper/0", "keeper/1")
	n.ctl(t, "stop", "keeper/1")
	n.waitInstances(t, "keeper/0")
	ps := n.ctl(t, "ps", "--all", "--name", "keeper")
	if !strings.Contains(ps, "(held)") {
		t.Errorf("the stopped instance is not shown held:\n%s", ps)
	}
	n.ctl(t, "restart", "keeper/1")
	back := n.waitInstances(t, "keeper/0", "keeper/1")
	if back["keeper/1"].ID == got["keeper/1"].ID {
		t.Error("keeper/1 has its old id after restart")
	}
}

func TestReloadAddsChangesAndRemovesDefinitions(t *testing.T) {
	n := startNodeWith(t, keeperTOML+`
[processes.doomed]
command = "sleep"
args = ["300"]
`)
	n.waitInstances(t, "keeper/0", "keeper/1")
	doomed := n.spawn(t, "doomed", "{}")
	base, err := os.ReadFile(n.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	// keeper drops to one instance, doomed goes, fresh comes, and a [node]
	// key changes that only a restart applies.
	next := replaceLast(string(base), "instances = 2", "instances = 1")
	next = next[:strings.Index(next, "[processes.doomed]")] + `
[processes.fresh]
command = "sleep"
args = ["300"]
`
	next = strings.Replace(next, "\n[node]\n", "\n[node]\nretention_max = 999\n", 1)
	if err := os.WriteFile(n.cfgPath, []byte(next), 0o600); err != nil {
		t.Fatal(err)
	}
	out := n.ctl(t, "reload")
	for _, want := range []string{"fresh", "keeper", "doomed", "node.retention_max"} {
		if !strings.Contains(out, want) {
			t.Errorf("reload output does not name %s:\n%s", want, out)
		}
	}
	n.waitInstances(t, "keeper/0")
	defs := n.ctl(t, "defs")
	if !strings.Contains(defs, "fresh") || strings.Contains(defs, "doomed") {
		t.Errorf("defs after reload:\n%s", defs)
	}
	n.spawn(t, "fresh", "{}")
	if _, err := n.runCtl("spawn", "doomed"); err == nil {
		t.Error("a removed definition can still be spawned")
	}
	// The running process of a removed definition runs on.
	if p := n.ctl(t, "get", doomed.ID, "--json"); !strings.Contains(p, `"running"`) {
		t.Errorf("the process of the removed definition: %s", p)
	}

	// An invalid file changes nothing, and says why.
	if err := os.WriteFile(n.cfgPath, []byte(next+"\n[processes.broken]\nargs = [\"x\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = n.runCtl("reload")
	if err == nil || !strings.Contains(err.Error(), "processes.broken.command is required; nothing changed") {
		t.Errorf("reload of an invalid file: %v\n%s", err, out)
	}
	if defs2 := n.ctl(t, "defs"); defs2 != defs {
		t.Errorf("an invalid reload changed the definitions:\n%s\nwas\n%s", defs2, defs)
	}

	// SIGHUP reloads too.
	if err := os.WriteFile(n.cfgPath, []byte(replaceLast(next, "instances = 1", "instances = 3")), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := n.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	n.waitInstances(t, "keeper/0", "keeper/1", "keeper/2")
}

// replaceLast replaces the last old in s (config.example.toml shows the
// keys commented out above the tests' own tables).
func replaceLast(s, old, new string) string {
	i := strings.LastIndex(s, old)
	return s[:i] + new + s[i+len(old):]
}
