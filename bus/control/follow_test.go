package control_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus"
	"github.com/corral-run/corral/bus/control"
	"github.com/corral-run/corral/internal/await"
	"github.com/corral-run/corral/internal/testnode"
	"github.com/corral-run/corral/node"
)

// Over a long FollowAll, processes that start and end one after another
// are each followed once, from their first line to their end, and what it
// keeps of them stays bounded: those it follows now, and the last few
// that ended. A spawn of another name costs it no request.
func TestFollowAllForgetsEndedProcesses(t *testing.T) {
	// It says hi and ends, or with HOLD=30 waits that long.
	brief := node.Definition{Name: "brief", Command: "sh", Args: []string{"-c", `echo "hi from $DONKEYLABS_PROCESS_ID"; exec sleep "${HOLD:-0}"`},
		SpawnEnv: []string{"HOLD"}, StopTimeout: time.Second}
	other := node.Definition{Name: "other", Command: "true", StopTimeout: time.Second}
	n := testnode.Start(t, testnode.StartServer(t, false), testnode.Spec{ID: "n1", Definitions: []node.Definition{brief, other}})
	ctx, cancelAll := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancelAll()

	// Every get request anyone makes.
	var (
		getsMu sync.Mutex
		gets   []string
	)
	nc := testnode.Connect(t, n.URL)
	sub, err := nc.Subscribe(bus.ProcSubject("*", bus.VerbGet), func(m *nats.Msg) {
		getsMu.Lock()
		gets = append(gets, m.Subject)
		getsMu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	const remember = 4
	followed := control.NewFollowSet(remember)
	got := make(chan control.Followed, 1024)
	fctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	// One that runs: FollowAll is under way once it has its output.
	first, err := n.Ctl.Spawn(ctx, "", "brief", api.SpawnRequest{Env: map[string]string{"HOLD": "30"}})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		done <- n.Ctl.FollowAllWith(fctx, control.Selector{Name: "brief"}, control.FollowOptions{Tail: 10}, func(f control.Followed) error {
			got <- f
			return nil
		}, followed)
	}()
	outputs, ends := map[string]string{}, map[string]int{}
	// waitFor reads what FollowAll hands over until id has ended, or
	// only until its first line when ended is false.
	waitFor := func(id string, ended bool) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for ended && ends[id] == 0 || !ended && outputs[id] == "" {
			select {
			case f := <-got:
				switch {
				case f.Err != nil:
					t.Fatalf("following %s: %v", f.Process.ID, f.Err)
				case f.End != nil:
					ends[f.Process.ID]++
				default:
					outputs[f.Process.ID] += string(f.Data)
				}
			case err := <-done:
				t.Fatalf("FollowAll returned %v", err)
			case <-deadline:
				t.Fatalf("%s: not ended (or no output) within 10s; had %q", id, outputs[id])
			}
		}
	}
	waitFor(first.ID, false)
	if _, err := n.Ctl.Stop(ctx, first.ID, ""); err != nil {
		t.Fatal(err)
	}
	waitFor(first.ID, true)

	var others []string
	for i := range 3 * remember * 2 {
		others = append(others, testnode.Spawn(t, n, "other").ID)
		mp := testnode.Spawn(t, n, "brief")
		waitFor(mp.ID, true)
		if outputs[mp.ID] != "hi from "+mp.ID+"\n" {
			t.Errorf("brief %d: followed %q", i, outputs[mp.ID])
		}
		if k := followed.Size(); k > remember+1 { // +1: the follow that just ended may not have noted it yet
			t.Fatalf("after %d processes ended, FollowAll keeps %d", i+2, k)
		}
	}
	await.Until(t, 10*time.Second, "the last follow to be over", func() bool { return followed.Size() == remember })

	cancel()
	if err := <-done; err != nil {
		t.Errorf("FollowAll = %v after its context ended", err)
	}
	for len(got) > 0 {
		if f := <-got; f.End != nil {
			ends[f.Process.ID]++
		}
	}
	for id, k := range ends {
		if k != 1 {
			t.Errorf("%s ended %d times", id, k)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	getsMu.Lock()
	defer getsMu.Unlock()
	for _, id := range others {
		for _, g := range gets {
			if strings.Contains(g, id) {
				t.Errorf("FollowAll of brief asked for %s, a process of another name", g)
			}
		}
	}
	if len(gets) > 3*remember*2 {
		t.Errorf("%d get requests for %d spawns of brief", len(gets), 3*remember*2)
	}
}
