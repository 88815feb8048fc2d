package main

import (
	"strings"
	"testing"
	"time"

	"github.com/corral-run/corral/internal/await"
	"github.com/corral-run/corral/internal/testnode"
)

// Two nodes on one NATS server with JetStream (so with the node
// registry): placement by label, then the nodes, ps and get once one of
// them is gone.
func TestTwoNodes(t *testing.T) {
	const beat = 100 * time.Millisecond
	srv := testnode.StartServer(t, true)
	a := addNode(t, srv, nodeSpec{id: "a", labels: map[string]string{"zone": "eu"}, jetstream: true, heartbeat: beat})
	b := addNode(t, srv, nodeSpec{id: "b", labels: map[string]string{"zone": "us", "gpu": "yes"}, jetstream: true, heartbeat: beat})

	rs := rows(t, a.ok(t, "nodes"))
	if len(rs) != 3 {
		t.Fatalf("nodes = %v, want a and b", rs)
	}
	labels, state := column(t, rs[0], "LABELS"), column(t, rs[0], "STATE")
	if rs[1][0] != "a" || rs[1][labels] != "zone=eu" || rs[1][state] != "alive" ||
		rs[2][0] != "b" || rs[2][labels] != "gpu=yes,zone=us" || rs[2][state] != "alive" {
		t.Errorf("nodes = %v", rs)
	}

	// Placement by label.
	onB := spawned(t, a, "sleeper", "--label", "zone=us", "--label", "gpu=yes")
	if row := processRow(t, a.ok(t, "ps"), onB); row == nil || row["NODE"] != "b" {
		t.Errorf("spawn --label zone=us --label gpu=yes went to %v, want b", row)
	}
	onA := spawned(t, b, "talker", "--label", "zone=eu")
	if row := processRow(t, b.ok(t, "ps"), onA); row == nil || row["NODE"] != "a" {
		t.Errorf("spawn --label zone=eu went to %v, want a", row)
	}
	start := time.Now()
	a.fails(t, 1, "no node has labels zone=mars", "spawn", "sleeper", "--label", "zone=mars")
	a.fails(t, 1, `no node with labels zone=eu defines it (nodes with those labels: a)`, "spawn", "nope", "--label", "zone=eu")
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("two refused placements took %v: not fast", d)
	}
	a.fails(t, 2, "give --node or --label, not both", "spawn", "sleeper", "--node", "a", "--label", "zone=eu")
	a.fails(t, 2, `--label "zone" must be KEY=VALUE`, "spawn", "sleeper", "--label", "zone")
	a.fails(t, 2, `--label "zone=e u" must be KEY=VALUE`, "spawn", "sleeper", "--label", "zone=e u")

	// b dies, leaving its child running.
	b.Die(t)
	if !await.Poll(10*time.Second, func() bool {
		rs = rows(t, a.ok(t, "nodes"))
		return len(rs) == 3 && rs[2][0] == "b" && rs[2][state] == "gone"
	}) {
		t.Fatalf("b never shown gone: %v", rs)
	}
	r := a.run(t, "ps")
	if r.code != 0 || !strings.Contains(r.stderr, `corralctl: node "b" is gone: its processes are listed as unknown`) {
		t.Errorf("ps with b gone: %v", r)
	}
	if row := processRow(t, r.stdout, onB); row == nil || row["STATUS"] != "unknown" || row["NODE"] != "b" {
		t.Errorf("ps row of b's process = %v, want unknown on b", row)
	}
	if row := processRow(t, r.stdout, onA); row == nil || row["STATUS"] != "running" {
		t.Errorf("ps row of a's process = %v, want running", row)
	}
	start = time.Now()
	a.fails(t, 1, `cannot get "`+onB+`": node "b" is unreachable`, "get", onB)
	a.fails(t, 1, `cannot stop "`+onB+`": node "b" is unreachable`, "stop", onB)
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("two requests to a gone node took %v: not fast", d)
	}
	a.fails(t, 1, `cannot stop 1 process on node "b": node "b" is unreachable`, "stop", "--all", "--name", "sleeper")
}
