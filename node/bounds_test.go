package node_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/node"
)

// A child that does not read its socket cannot make the node queue
// without bound: once its outbox holds its limit, send is refused with a
// 503 that says so.
func TestSendToAChildThatDoesNotReadIsRefused(t *testing.T) {
	h := newHarness(t, "unix")
	h.define(t, "mute", h.ctrl.Env(), nil)
	mp := h.spawn(t, "mute", node.SpawnOptions{})
	peer := h.ctrl.Accept() // and never read what the node sends
	peer.Send(line(mp.ID, "connected", ""))
	h.rec.Wait(t, node.KindConnected, mp.ID)
	msg := json.RawMessage(`{"blob":"` + strings.Repeat("x", 1<<20) + `"}`)
	sent := 0
	var err error
	for range 200 {
		if err = h.sup.Send(mp.ID, msg); err != nil {
			break
		}
		sent++
	}
	if !errors.Is(err, api.ErrNoCapacity) || api.Code(err) != 503 || !strings.Contains(err.Error(), "it is not reading") {
		t.Fatalf("after %d sends: %v, want a 503 saying the child is not reading", sent, err)
	}
	if sent > 8 {
		t.Errorf("%d MiB were queued for a child that does not read", sent)
	}
}

// A message sent over several lines reaches the child as one line.
func TestSendIsOneLine(t *testing.T) {
	h := newHarness(t, "unix")
	h.define(t, "w", h.ctrl.Env(), nil)
	mp := h.spawn(t, "w", node.SpawnOptions{})
	peer := h.ctrl.Accept()
	peer.Send(line(mp.ID, "connected", ""))
	h.rec.Wait(t, node.KindConnected, mp.ID)
	if err := h.sup.Send(mp.ID, json.RawMessage("{\n  \"type\": \"pause\",\n  \"n\": [1, 2]\n}")); err != nil {
		t.Fatal(err)
	}
	if got := peer.ReadLine(); got != `{"type":"pause","n":[1,2]}` {
		t.Errorf("the child read %q", got)
	}
}

func TestMetadataIsBounded(t *testing.T) {
	h := newHarness(t, "unix")
	h.define(t, "w", h.ctrl.Env(), nil)
	big := json.RawMessage(fmt.Sprintf(`{"blob":%q}`, strings.Repeat("x", 200<<10)))
	_, err := h.sup.Spawn(context.Background(), "w", node.SpawnOptions{Metadata: big})
	if !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), "the limit of 131072 (128 KiB)") {
		t.Errorf("200 KiB of metadata: %v, want a 400 naming the limit", err)
	}
}

// A working directory that does not exist is the caller's mistake (400,
// naming it), not a 500 about fork/exec.
func TestMissingWorkingDirectoryIs400(t *testing.T) {
	h := newHarness(t, "unix")
	h.define(t, "w", h.ctrl.Env(), func(d *node.Definition) { d.SpawnCwd = true })
	h.define(t, "lost", h.ctrl.Env(), func(d *node.Definition) { d.Cwd = "/nonexistent/corral-cwd" })
	for name, opts := range map[string]node.SpawnOptions{"w": {Cwd: "/nonexistent/spawn-cwd"}, "lost": {}} {
		_, err := h.sup.Spawn(context.Background(), name, opts)
		want := "/nonexistent/spawn-cwd does not exist"
		if name == "lost" {
			want = "the definition's working directory /nonexistent/corral-cwd does not exist"
		}
		if !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("spawn %s: %v, want a 400 saying %q", name, err, want)
		}
	}
}

// A node at its capacity refuses more, naming the limit: the node's, or
// the definition's.
func TestCapacityIsEnforced(t *testing.T) {
	h := newHarnessWith(t, node.Config{MaxProcesses: 3})
	h.define(t, "a", role("sleep"), func(d *node.Definition) { d.MaxInstances = 2 })
	h.define(t, "b", role("sleep"), nil)
	ctx := context.Background()
	for range 2 {
		h.spawn(t, "a", node.SpawnOptions{})
	}
	if _, err := h.sup.Spawn(ctx, "a", node.SpawnOptions{}); !errors.Is(err, api.ErrNoCapacity) || !strings.Contains(err.Error(), "max_instances") {
		t.Errorf("third a: %v, want 503 naming max_instances", err)
	}
	h.spawn(t, "b", node.SpawnOptions{})
	if _, err := h.sup.Spawn(ctx, "b", node.SpawnOptions{}); !errors.Is(err, api.ErrNoCapacity) || !strings.Contains(err.Error(), "node.max_processes") {
		t.Errorf("fourth process: %v, want 503 naming node.max_processes", err)
	}
	if h.sup.Room("b") {
		t.Error("Room says there is room on a full node")
	}
	if _, err := h.sup.StopAll(ctx, 0, "a"); err != nil {
		t.Fatal(err)
	}
	h.spawn(t, "b", node.SpawnOptions{}) // room again
}

// A burst of concurrent spawns neither overshoots the node's capacity nor
// starts one instance twice (plain spawns may take every place first, so
// the instance may not start at all).
func TestConcurrentSpawnsKeepTheLimits(t *testing.T) {
	h := newHarnessWith(t, node.Config{MaxProcesses: 5})
	h.define(t, "a", role("sleep"), nil)
	ctx := context.Background()
	var wg sync.WaitGroup
	var mu sync.Mutex
	started, refused := 0, 0
	for i := range 20 {
		wg.Go(func() {
			opts := node.SpawnOptions{}
			if i < 8 {
				opts.Instance = "a/0" // eight spawns of one instance: one wins
			}
			_, err := h.sup.Spawn(ctx, "a", opts)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				started++
			case errors.Is(err, api.ErrNoCapacity), errors.Is(err, node.ErrConflict):
				refused++
			default:
				t.Errorf("spawn: %v", err)
			}
		})
	}
	wg.Wait()
	if started != 5 || refused != 15 {
		t.Errorf("%d started, %d refused, want 5 and 15", started, refused)
	}
	inst := 0
	for _, p := range h.sup.GetAll() {
		if p.Instance == "a/0" && p.Status == api.StatusRunning {
			inst++
		}
	}
	if inst > 1 {
		t.Errorf("instance a/0 runs %d times, want once at most", inst)
	}
}
