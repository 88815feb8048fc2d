package main

import (
	"strings"
	"testing"
)

// A process is named by its id, a unique prefix of it, or, as the ps
// table shows, never needs copying whole; an ambiguous prefix lists the
// candidates; stop --name stops every process of a definition.
func TestProcessesByPrefixAndName(t *testing.T) {
	n := startNode(t)
	a := spawned(t, n, "sleeper")
	b := spawned(t, n, "sleeper")
	common := 5 // "proc_"
	for common < len(a) && a[common] == b[common] {
		common++
	}
	end := common + 1
	for strings.HasPrefix("proc_", a[5:end]) { // "p" would be a prefix of every id
		end++
	}
	for _, ref := range []string{a[:end], strings.TrimPrefix(a[:end], "proc_")} {
		if out := n.ok(t, "get", ref); !strings.Contains(out, a) {
			t.Errorf("get %s shows:\n%s", ref, out)
		}
	}
	r := n.run(t, "stop", "proc_")
	if r.code != 1 || !strings.Contains(r.stderr, `"proc_" matches 2 processes: `) || !strings.Contains(r.stderr, a) || !strings.Contains(r.stderr, b) {
		t.Errorf("stop of an ambiguous prefix: %+v", r)
	}
	if out := n.ok(t, "stop", "--name", "sleeper"); strings.Count(out, "stopped") != 2 {
		t.Errorf("stop --name sleeper:\n%s", out)
	}
}

// Shell completion offers the cluster's processes, definitions and nodes.
func TestCompletionAsksTheCluster(t *testing.T) {
	n := startNode(t)
	id := spawned(t, n, "sleeper")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"__complete", "get", ""}, id + "\tsleeper on n1, running"},
		{[]string{"__complete", "spawn", ""}, "talker"},
		{[]string{"__complete", "ps", "--node", ""}, "n1"},
	} {
		if r := n.run(t, tc.args...); r.code != 0 || !strings.Contains(r.stdout, tc.want) {
			t.Errorf("%v offers:\n%s\nwant %q", tc.args, r.stdout, tc.want)
		}
	}
}
