package daemon_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus"
	"github.com/corral-run/corral/bus/control"
	"github.com/corral-run/corral/internal/natstest"
	"github.com/corral-run/corral/internal/testchild"
	"github.com/corral-run/corral/node"
)

// answer is the node's reply to one event line: an ack, or an error.
type answer struct {
	id  int
	err string
}

// An external nats-server goes away for two seconds while a child emits
// events with ids and comes back on the same port and store: every event
// is acked, only once it is stored, and stored exactly once (those resent
// with the same id too); the node kept supervising meanwhile, caught up,
// and its control plane answers again; nothing was dropped.
func TestNATSOutage(t *testing.T) {
	ns := natstest.Start(t)
	ctrl := testchild.NewCtrl(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	env := ctrl.Env()
	d := startDaemon(t, parseConfig(t, fmt.Sprintf(`
[node]
id = "n1"
data_dir = %q
[nats]
url = %q
publish_buffer = 128
[processes.encoder]
command = %q
heartbeat_timeout = "0s"
stop_timeout = "2s"
env = { %s = %q, %s = %q }
`, testchild.ShortTempDir(t), ns.URL(), exe, testchild.EnvRole, env[testchild.EnvRole], testchild.EnvCtrl, env[testchild.EnvCtrl])), slog.LevelInfo)
	nc, err := nats.Connect(ns.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	ctl := control.New(nc, control.WithTimeout(10*time.Second))
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	mp, err := ctl.Spawn(ctx, "", "encoder", api.SpawnRequest{})
	if err != nil {
		t.Fatal(err)
	}
	peer := ctrl.Accept()
	line := func(id int) string {
		return fmt.Sprintf(`{"type":"event","event":"progress","data":{"percent":%d},"processId":%q,"timestamp":1,"id":%d}`+"\n", id%100, mp.ID, id)
	}

	// The child: ten events every 5 ms until told to stop, then the
	// resends it is handed.
	var sent atomic.Int64
	stopSending := make(chan struct{})
	resend := make(chan []int)
	writerDone := make(chan error, 1)
	go func() {
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		var batch []byte
		for {
			select {
			case <-tick.C:
				batch = batch[:0]
				for range 10 {
					batch = append(batch, line(int(sent.Add(1)-1))...)
				}
			case <-stopSending:
				ids := <-resend
				batch = batch[:0]
				for _, id := range ids {
					batch = append(batch, line(id)...)
				}
				_, err := peer.Write(batch)
				writerDone <- err
				return
			}
			if _, err := peer.Write(batch); err != nil {
				writerDone <- err
				return
			}
		}
	}()
	answers := make(chan answer, 1<<16)
	go func() {
		defer close(answers)
		sc := bufio.NewScanner(peer)
		for sc.Scan() {
			var a struct {
				Type    string `json:"type"`
				ID      int    `json:"id"`
				Message string `json:"message"`
			}
			if err := json.Unmarshal(sc.Bytes(), &a); err != nil || (a.Type != "ack" && a.Type != "error") {
				answers <- answer{id: -1, err: "unexpected line " + sc.Text()}
				continue
			}
			if a.Type == "error" && a.Message == "" {
				a.Message = "error without a message"
			}
			answers <- answer{id: a.ID, err: a.Message}
		}
	}()
	acks := map[int]int{}
	low := 0 // every id under low is acked
	acked := func(upTo int) bool {
		for low < upTo && acks[low] > 0 {
			low++
		}
		return low >= upTo
	}
	var failures []answer
	// await takes answers until cond holds.
	await := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			select {
			case a, ok := <-answers:
				if !ok {
					t.Fatalf("the child's connection ended while waiting for %s", what)
				}
				if a.err != "" {
					failures = append(failures, a)
					continue
				}
				acks[a.id]++
			case <-ctx.Done():
				t.Fatalf("still waiting for %s: %d events sent, %d acked", what, sent.Load(), len(acks))
			}
		}
	}
	await("the first acks", func() bool { return len(acks) >= 300 })

	ns.Stop()
	outageStart := sent.Load()
	// The node keeps supervising while NATS is away: a spawn through the
	// Go API works, its process.spawned waits for NATS.
	during, err := d.Supervisor().Spawn(ctx, "encoder", node.SpawnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctrl.Accept()
	time.Sleep(2 * time.Second) // the outage: the fault this test injects
	outageEnd := sent.Load()
	ns.Restart()
	t.Logf("sent %d events during the outage (%d before); %d acked when it began", outageEnd-outageStart, outageStart, len(acks))

	// Everything sent during the outage is acked after it, and more.
	await("the events of the outage", func() bool { return acked(int(outageEnd) + 200) })
	close(stopSending)
	// Resent with the same ids, as a client that lost their acks would:
	// the 200 events sent just before the outage, and any refused.
	var again []int
	for id := max(0, int(outageStart)-200); id < int(outageStart); id++ {
		again = append(again, id)
	}
	for _, f := range failures {
		again = append(again, f.id)
	}
	resend <- again
	if err := <-writerDone; err != nil {
		t.Fatal(err)
	}
	total := int(sent.Load())
	await("every ack", func() bool {
		if !acked(total) {
			return false
		}
		n := 0
		for _, id := range again {
			n += acks[id]
		}
		return n >= 2*len(again)-len(failures)
	})
	if len(failures) > 0 {
		t.Errorf("%d events refused, first %+v: with a 2 s outage none should be", len(failures), failures[0])
	}

	stored := natstest.StoredIDs(t, nc)
	prefix := mp.ID + ":"
	events := 0
	for id, n := range stored {
		if strings.HasPrefix(id, prefix) {
			events++
			if n != 1 {
				t.Errorf("%s stored %d times", id, n)
			}
		}
	}
	for id := range total {
		if stored[fmt.Sprintf("%s%d", prefix, id)] != 1 {
			t.Errorf("event %d acked but stored %d times", id, stored[fmt.Sprintf("%s%d", prefix, id)])
		}
	}
	if events != total {
		t.Errorf("%d events stored, %d sent", events, total)
	}
	t.Logf("%d events sent, all acked, each stored once; %d resent", total, len(again))

	// The control plane answers again.
	if got, err := ctl.Get(ctx, mp.ID); err != nil || got.Status != api.StatusRunning {
		t.Errorf("get after the outage: %+v, %v", got, err)
	}
	if list, err := ctl.List(ctx, api.ListRequest{}); err != nil || len(list.Processes) != 2 {
		t.Errorf("list after the outage: %+v, %v", list, err)
	}
	if _, err := ctl.Spawn(ctx, "n1", "encoder", api.SpawnRequest{}); err != nil {
		t.Errorf("spawn after the outage: %v", err)
	} else {
		ctrl.Accept()
	}
	nodes, err := ctl.Nodes(ctx)
	if err != nil || len(nodes) != 1 || !nodes[0].Durable || nodes[0].Dropped != 0 {
		t.Errorf("nodes after the outage: %+v, %v (want durable, nothing dropped)", nodes, err)
	}
	// What happened during the outage reached the history.
	var spawned []string
	err = ctl.History(ctx, control.HistoryOptions{ProcessID: during.ID}, func(e control.Event) { spawned = append(spawned, e.Subject) })
	if err != nil || len(spawned) == 0 || spawned[0] != bus.SubjectSpawned {
		t.Errorf("history of the process spawned during the outage: %v, %v", spawned, err)
	}
}
