package e2e_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus/control"
	"github.com/corral-run/corral/internal/await"
)

// muteChild connects, says it is connected, and never reads a byte.
const muteChild = `
[processes.mute]
command = "python3"
args = ["-c", """
import json, os, socket, time
s = socket.socket(socket.AF_UNIX)
s.connect(os.environ["DONKEYLABS_SOCKET_PATH"])
s.sendall((json.dumps({"type": "connected", "processId": os.environ["DONKEYLABS_PROCESS_ID"], "timestamp": 0}) + "\\n").encode())
time.sleep(600)
"""]
heartbeat_timeout = "0s"
stop_timeout = "2s"
`

// rssBytes is a process's resident set size.
func rssBytes(t testing.TB, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// 200 sends of 1 MiB to a child that does not read: the node refuses what
// it cannot hand on instead of holding it, its memory stays bounded, and
// requests for another process are answered at once meanwhile.
func TestFloodOfSendsToAChildThatDoesNotRead(t *testing.T) {
	n := startNodeWith(t, muteChild)
	nc, err := nats.Connect(n.url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctl := control.New(nc, control.WithTimeout(20*time.Second))
	ctx := context.Background()
	mute, err := ctl.Spawn(ctx, "", "mute", api.SpawnRequest{})
	if err != nil {
		t.Fatal(err)
	}
	other, err := ctl.Spawn(ctx, "", "ticker", api.SpawnRequest{})
	if err != nil {
		t.Fatal(err)
	}
	await.Until(t, waitEvent, "the mute child to connect", func() bool {
		p, err := ctl.Get(ctx, mute.ID)
		return err == nil && p.Connected
	})
	before := rssBytes(t, n.cmd.Process.Pid)

	blob := json.RawMessage(`{"blob":"` + strings.Repeat("x", 1<<20-16) + `"}`)
	var refused, accepted int
	var floodErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		for range 200 {
			err := ctl.Send(ctx, mute.ID, blob)
			switch {
			case err == nil:
				accepted++
			case errors.Is(err, control.ErrNoCapacity):
				refused++
			case errors.Is(err, control.ErrConflict):
				// A write blocked for 10 s: the node closed the mute
				// child's connection, so there is nobody to send to.
				refused++
			default:
				floodErr = err
				return
			}
		}
	})
	// Meanwhile, requests for another process.
	var lat []time.Duration
	for range 40 {
		start := time.Now()
		if _, err := ctl.Get(ctx, other.ID); err != nil {
			t.Fatal(err)
		}
		lat = append(lat, time.Since(start))
		time.Sleep(5 * time.Millisecond) // pacing the probes, not waiting for anything
	}
	wg.Wait()
	if floodErr != nil {
		t.Fatal(floodErr)
	}
	after := rssBytes(t, n.cmd.Process.Pid)
	slices.Sort(lat)
	limit := 50 * time.Millisecond
	if raceEnabled {
		limit = 250 * time.Millisecond // the race detector slows every copy several times over
	}
	t.Logf("sends: %d accepted, %d refused; node RSS %d MiB → %d MiB; get of another process: median %v, max %v",
		accepted, refused, before>>20, after>>20, lat[len(lat)/2], lat[len(lat)-1])
	if refused == 0 || accepted > 8 {
		t.Errorf("%d sends accepted, %d refused: the node queues for a child that does not read", accepted, refused)
	}
	if lat[len(lat)-1] > limit {
		t.Errorf("another process answered in %v at worst, want within %v", lat[len(lat)-1], limit)
	}
	// Without the race detector: under 100 MiB, as the node holds at most
	// its outbox limit. With it, every allocation costs shadow memory
	// several times over, so only the growth is bounded (holding the 200
	// MiB would grow it by far more).
	maxGrowth := int64(48 << 20)
	if raceEnabled {
		maxGrowth = 128 << 20
	}
	if grew := after - before; grew > maxGrowth || (!raceEnabled && after > 100<<20) {
		t.Errorf("node RSS %d MiB → %d MiB", before>>20, after>>20)
	}
}

// A burst of spawns fills a node to its capacity: every one beyond it is
// refused with a 503 naming the limit, and the node still answers at once
// and still lets a new client in.
func TestBurstOfSpawnsToTheCap(t *testing.T) {
	const capacity = 30
	port := freePort(t)
	n := clusterNode(t, "capped", nil, fmt.Sprintf("[nats]\nlisten = \"127.0.0.1:%d\"\n", port))
	n.port, n.url = port, fmt.Sprintf("nats://127.0.0.1:%d", port)
	// clusterNode's config: add the cap through the environment, as an
	// operator may.
	n.run(t, programEnv(fmt.Sprintf("CORRAL_NODE_MAX_PROCESSES=%d", capacity)))
	n.waitReady(t)
	nc, err := nats.Connect(n.url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctl := control.New(nc, control.WithTimeout(20*time.Second))
	ctx := context.Background()

	const burst = 3 * capacity
	errs := make(chan error, burst)
	var wg sync.WaitGroup
	for range burst {
		wg.Go(func() {
			_, err := ctl.Spawn(ctx, "capped", "sleeper", api.SpawnRequest{})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	ok, full := 0, 0
	for err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, control.ErrNoCapacity) && strings.Contains(err.Error(), "node.max_processes"):
			full++
		default:
			t.Errorf("spawn: %v", err)
		}
	}
	if ok != capacity || full != burst-capacity {
		t.Errorf("%d spawned and %d refused, want %d and %d", ok, full, capacity, burst-capacity)
	}
	for _, what := range []struct {
		name string
		call func() error
	}{
		{"nodes", func() error { _, err := ctl.Nodes(ctx); return err }},
		{"ps", func() error { _, err := ctl.List(ctx, api.ListRequest{}); return err }},
	} {
		start := time.Now()
		if err := what.call(); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > 100*time.Millisecond && !raceEnabled {
			t.Errorf("%s took %v on a full node, want within 100ms", what.name, d)
		}
	}
	if out := n.ctl(t, "ps"); strings.Count(out, "sleeper") != capacity {
		t.Errorf("a new corralctl sees:\n%s", out)
	}
}
