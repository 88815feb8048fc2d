package daemon_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus"
	"github.com/corral-run/corral/bus/control"
	"github.com/corral-run/corral/internal/daemon"
	"github.com/corral-run/corral/internal/testchild"
)

func TestMain(m *testing.M) {
	testchild.Main()
	os.Exit(m.Run())
}

// startNode runs a whole node (embedded NATS on a random port) whose
// definitions run this test binary as a proxy child.
func startNode(t *testing.T, ctrl *testchild.Ctrl, extra string) (*daemon.Daemon, *nats.Conn) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	env := ctrl.Env()
	toml := fmt.Sprintf(`
[node]
id = "n1"
data_dir = %q
[nats]
listen = "127.0.0.1:0"
jetstream = false
[processes.encoder]
command = %q
stop_timeout = "2s"
env = { %s = %q, %s = %q }
[processes.encoder.events.progress]
type = "object"
required = ["percent"]
properties = { percent = { type = "number" }, fps = { type = "number" } }
[processes.encoder.events.complete]
%s
`, testchild.ShortTempDir(t), exe, testchild.EnvRole, env[testchild.EnvRole], testchild.EnvCtrl, env[testchild.EnvCtrl], extra)
	d := startDaemon(t, parseConfig(t, toml), slog.LevelInfo)
	// A separate TCP client, as any subscriber on the network would be.
	nc, err := nats.Connect(d.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return d, nc
}

// events subscribes to process.> and returns a function that waits for the
// next message on a subject.
func events(t *testing.T, nc *nats.Conn) func(subject string) *nats.Msg {
	ch := make(chan *nats.Msg, 1024)
	sub, err := nc.ChanSubscribe(bus.SubjectAll, ch)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Unsubscribe() })
	var seen []*nats.Msg
	return func(subject string) *nats.Msg {
		t.Helper()
		for i, m := range seen {
			if m.Subject == subject {
				seen = append(seen[:i], seen[i+1:]...)
				return m
			}
		}
		deadline := time.After(10 * time.Second)
		for {
			select {
			case m := <-ch:
				if m.Subject == subject {
					return m
				}
				seen = append(seen, m)
			case <-deadline:
				t.Fatalf("nothing on %s within 10s", subject)
				return nil
			}
		}
	}
}

func assertMsg(t *testing.T, m *nats.Msg, wantData string, procID string) {
	t.Helper()
	if string(m.Data) != wantData {
		t.Errorf("%s payload\n got %s\nwant %s", m.Subject, m.Data, wantData)
	}
	if m.Header.Get(bus.HeaderNode) != "n1" {
		t.Errorf("%s: Corral-Node %q", m.Subject, m.Header.Get(bus.HeaderNode))
	}
	if procID != "" && (m.Header.Get(bus.HeaderProcessID) != procID || m.Header.Get(bus.HeaderProcessName) != "encoder") {
		t.Errorf("%s: process headers %v", m.Subject, m.Header)
	}
	if m.Header.Get(bus.HeaderMsgID) == "" {
		t.Errorf("%s: no Nats-Msg-Id", m.Subject)
	}
}

func TestNodeRelaysLifecycleAndEventsOntoNATS(t *testing.T) {
	ctrl := testchild.NewCtrl(t)
	_, nc := startNode(t, ctrl, "")
	next := events(t, nc)
	ctl := control.New(nc)
	ctx := context.Background()

	mp, err := ctl.Spawn(ctx, "", "encoder", api.SpawnRequest{Metadata: json.RawMessage(`{"input":"a.mp4"}`)})
	if err != nil {
		t.Fatal(err)
	}
	peer := ctrl.Accept()
	if peer.Metadata != `{"input":"a.mp4"}` {
		t.Errorf("metadata seen by child: %s", peer.Metadata)
	}
	id := mp.ID
	assertMsg(t, next("process.spawned"), fmt.Sprintf(`{"processId":%q,"name":"encoder","pid":%d,"node":"n1"}`, id, mp.PID), id)

	send := func(typ, extra string) {
		if extra != "" {
			extra = "," + extra
		}
		peer.Send(fmt.Sprintf(`{"type":%q,"processId":%q,"timestamp":1%s}`, typ, id, extra))
	}
	send("connected", "")
	assertMsg(t, next("process.connected"), fmt.Sprintf(`{"processId":%q,"name":"encoder"}`, id), id)
	send("heartbeat", "")
	assertMsg(t, next("process.heartbeat"), fmt.Sprintf(`{"processId":%q,"name":"encoder"}`, id), id)

	send("event", `"event":"progress","data":{"percent":42.5,"fps":30},"id":"p1"`)
	if got := peer.ReadLine(); got != `{"type":"ack","id":"p1"}` {
		t.Fatalf("ack: %s", got)
	}
	m := next("process.encoder.progress")
	assertMsg(t, m, fmt.Sprintf(`{"processId":%q,"name":"encoder","percent":42.5,"fps":30}`, id), id)
	if got := m.Header.Get(bus.HeaderMsgID); got != id+":p1" {
		t.Errorf("Nats-Msg-Id %q, want %s:p1", got, id)
	}

	send("stats", `"stats":{"cpu":{"user":1,"system":2,"percent":3},"memory":{"rss":4,"heapTotal":5,"heapUsed":6,"external":7},"uptime":8}`)
	wantStats := fmt.Sprintf(`{"processId":%q,"name":"encoder","stats":{"cpu":{"user":1,"system":2,"percent":3},"memory":{"rss":4,"heapTotal":5,"heapUsed":6,"external":7},"uptime":8},"source":"client"}`, id)
	a, b := next("process.encoder.stats"), next("process.stats")
	assertMsg(t, a, wantStats, id)
	assertMsg(t, b, wantStats, id)
	if a.Header.Get(bus.HeaderMsgID) == b.Header.Get(bus.HeaderMsgID) {
		t.Error("the two stats messages share a Nats-Msg-Id")
	}

	// Node → child through the control plane.
	if err := ctl.Send(ctx, id, json.RawMessage(`{"type":"hello"}`)); err != nil {
		t.Fatal(err)
	}
	if got := peer.ReadLine(); got != `{"type":"hello"}` {
		t.Errorf("send: %s", got)
	}

	// Closing the proxy's control line makes the child exit 0: stopped.
	peer.Close()
	assertMsg(t, next("process.stopped"), fmt.Sprintf(`{"processId":%q,"name":"encoder","exitCode":0}`, id), id)
	got, err := ctl.Get(ctx, id)
	if err != nil || got.Status != api.Status("stopped") {
		t.Errorf("get after exit: %+v %v", got, err)
	}
}

func TestControlPlaneOverNATS(t *testing.T) {
	ctrl := testchild.NewCtrl(t)
	_, nc := startNode(t, ctrl, "")
	next := events(t, nc)
	ctl := control.New(nc)
	ctx := context.Background()

	nodes, err := ctl.Nodes(ctx)
	if err != nil || len(nodes) != 1 || nodes[0].ID != "n1" || strings.Join(nodes[0].Definitions, ",") != "encoder" {
		t.Fatalf("nodes: %+v %v", nodes, err)
	}
	defs, err := ctl.Definitions(ctx)
	if err != nil || len(defs) != 1 || len(defs[0].Definitions) != 1 || len(defs[0].Definitions[0].Events) != 2 {
		t.Fatalf("definitions: %+v %v", defs, err)
	}

	// Spawn addressed to the node, and through the queue group.
	a, err := ctl.Spawn(ctx, "n1", "encoder", api.SpawnRequest{})
	if err != nil {
		t.Fatal(err)
	}
	ctrl.Accept()
	b, err := ctl.Spawn(ctx, "", "encoder", api.SpawnRequest{})
	if err != nil {
		t.Fatal(err)
	}
	ctrl.Accept()
	list, err := ctl.List(ctx, api.ListRequest{})
	if err != nil || len(list.Processes) != 2 || list.Nodes[0] != "n1" {
		t.Fatalf("list: %+v %v", list, err)
	}
	if list.Processes[0].ID != a.ID || list.Processes[1].ID != b.ID {
		t.Errorf("list order: %v", list.Processes)
	}
	stopped, err := ctl.Stop(ctx, a.ID, "SIGTERM")
	if err != nil || stopped.Status != "stopped" {
		t.Fatalf("stop: %+v %v", stopped, err)
	}
	next("process.stopped")
	if l, _ := ctl.List(ctx, api.ListRequest{}); len(l.Processes) != 1 {
		t.Errorf("list without --all shows %d processes", len(l.Processes))
	}
	if l, _ := ctl.List(ctx, api.ListRequest{All: true}); len(l.Processes) != 2 {
		t.Errorf("list --all shows %d processes", len(l.Processes))
	}
	restarted, err := ctl.Restart(ctx, b.ID)
	if err != nil || restarted.ID == b.ID || restarted.Restarts != 1 {
		t.Fatalf("restart: %+v %v", restarted, err)
	}
	ctrl.Accept()
	rm := next("process.restarted")
	if want := fmt.Sprintf(`{"oldProcessId":%q,"newProcessId":%q,"name":"encoder","attempt":1}`, b.ID, restarted.ID); string(rm.Data) != want {
		t.Errorf("restarted payload %s", rm.Data)
	}
	all, err := ctl.StopAll(ctx, "encoder", "")
	if err != nil || len(all) != 1 || all[0].ID != restarted.ID {
		t.Errorf("stop all: %+v %v", all, err)
	}

	// Errors come back typed.
	if _, err := ctl.Spawn(ctx, "", "nope", api.SpawnRequest{}); !errors.Is(err, control.ErrNotFound) {
		t.Errorf("spawn undefined: %v", err)
	}
	if _, err := ctl.Spawn(ctx, "n1", "nope", api.SpawnRequest{}); !errors.Is(err, control.ErrNotFound) || !strings.Contains(err.Error(), "definition not found") {
		t.Errorf("spawn undefined on node: %v", err)
	}
	if _, err := ctl.Spawn(ctx, "ghost", "encoder", api.SpawnRequest{}); !errors.Is(err, control.ErrUnreachable) {
		t.Errorf("spawn on unknown node: %v", err)
	}
	if _, err := ctl.Spawn(ctx, "", "encoder", api.SpawnRequest{Metadata: json.RawMessage(`"x"`)}); !errors.Is(err, control.ErrBadRequest) || !strings.Contains(err.Error(), "metadata must be a JSON object") {
		t.Errorf("string metadata: %v", err)
	}
	if _, err := ctl.Stop(ctx, "proc_doesnotexist0000", ""); !errors.Is(err, control.ErrNotFound) || !strings.Contains(err.Error(), "no such process") {
		t.Errorf("stop unknown: %v", err)
	}
	if _, err := ctl.Stop(ctx, a.ID, ""); !errors.Is(err, control.ErrConflict) {
		t.Errorf("stop of a stopped process: %v", err)
	}
	if _, err := ctl.Stop(ctx, b.ID, "SIGNOPE"); !errors.Is(err, control.ErrBadRequest) {
		t.Errorf("stop with a bad signal: %v", err)
	}

	// The raw micro error headers, as `nats req` shows them.
	msg, err := nc.Request("corral.spawn.encoder", []byte(`{"metadata":[1]}`), 5*time.Second)
	if err != nil || msg.Header.Get("Nats-Service-Error-Code") != "400" || !strings.Contains(msg.Header.Get("Nats-Service-Error"), "metadata") {
		t.Errorf("raw error reply: %v %v", msg, err)
	}
}
