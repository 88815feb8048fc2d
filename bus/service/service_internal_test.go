package service

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus"
	"github.com/corral-run/corral/bus/control"
	"github.com/corral-run/corral/bus/embedded"
	"github.com/corral-run/corral/internal/await"
	"github.com/corral-run/corral/node"
)

// fakeSupervisor is a Supervisor whose methods the test sets; unset ones
// fail the test.
type fakeSupervisor struct {
	t   *testing.T
	get func(id string) (api.ManagedProcess, bool)
}

var _ Supervisor = (*fakeSupervisor)(nil)

func (f *fakeSupervisor) unexpected(what string) error {
	f.t.Errorf("unexpected call to %s", what)
	return errors.New("unexpected")
}

func (f *fakeSupervisor) Spawn(context.Context, string, node.SpawnOptions) (api.ManagedProcess, error) {
	return api.ManagedProcess{}, f.unexpected("Spawn")
}
func (f *fakeSupervisor) Get(id string) (api.ManagedProcess, bool) { return f.get(id) }
func (f *fakeSupervisor) GetAll() []api.ManagedProcess             { return nil }
func (f *fakeSupervisor) Summary() (int, []api.ProcessSummary)     { return 0, []api.ProcessSummary{} }
func (f *fakeSupervisor) Stop(context.Context, string, syscall.Signal) (api.ManagedProcess, error) {
	return api.ManagedProcess{}, f.unexpected("Stop")
}
func (f *fakeSupervisor) StopAll(context.Context, syscall.Signal, string) ([]api.ManagedProcess, error) {
	return nil, f.unexpected("StopAll")
}
func (f *fakeSupervisor) Restart(context.Context, string) (api.ManagedProcess, error) {
	return api.ManagedProcess{}, f.unexpected("Restart")
}
func (f *fakeSupervisor) Send(string, json.RawMessage) error  { return f.unexpected("Send") }
func (f *fakeSupervisor) DefineRemote(node.Definition) error  { return f.unexpected("DefineRemote") }
func (f *fakeSupervisor) Apply(node.Definition) (bool, error) { return false, f.unexpected("Apply") }
func (f *fakeSupervisor) Unapply(string) bool                 { f.unexpected("Unapply"); return false }
func (f *fakeSupervisor) Shadowed() []string                  { return nil }
func (f *fakeSupervisor) Definitions() []node.Definition      { return nil }
func (f *fakeSupervisor) Tail(context.Context, string, node.TailOptions) (node.LogSnapshot, error) {
	return node.LogSnapshot{}, f.unexpected("Tail")
}
func (f *fakeSupervisor) FollowLogs(context.Context, string, node.LogSink, node.TailOptions) (node.LogSnapshot, error) {
	return node.LogSnapshot{}, f.unexpected("FollowLogs")
}
func (f *fakeSupervisor) UnfollowLogs(string, node.LogSink) {}

// A request with a field the service does not know is refused with 400,
// which Control reports as ErrBadRequest, and the supervisor never sees it.
func TestBadRequestIsErrBadRequest(t *testing.T) {
	srv, nc := embeddedServer(t)
	svc := New(nc, Config{NodeID: "f"})
	defer svc.Close()
	const id = "proc_fake"
	sup := &fakeSupervisor{t: t, get: func(got string) (api.ManagedProcess, bool) {
		return api.ManagedProcess{ID: got, Name: "fake", Node: "f", Status: api.StatusRunning}, got == id
	}}
	if err := svc.Serve(sup); err != nil {
		t.Fatal(err)
	}
	// As the supervisor does on a spawn: the service starts answering for id.
	if err := svc.Publish(node.Report{Kind: node.KindSpawned, ProcessID: id, Name: "fake",
		Payload: api.Spawned{ProcessID: id, Name: "fake", PID: 1, Node: "f"}}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	cc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	c := control.New(cc, control.WithTimeout(5*time.Second))
	ctx := t.Context()

	for _, tt := range []struct{ subject, body string }{
		{bus.NodeSubject("f", bus.VerbSpawn), `{"nmae":"fake"}`},
		{bus.NodeSubject("f", bus.VerbStopAll), `{"signal":"TERM","names":"x"}`},
		{bus.ProcSubject(id, bus.VerbStop), `{"sig":"TERM"}`},
		{bus.ProcSubject(id, bus.VerbLogs), `{"lines":"ten"}`},
		{bus.NodeSubject("f", bus.VerbList), `{"after":5}`},
		{bus.NodeSubject("f", bus.VerbProcs), `{"part":"one"}`},
		{bus.NodeSubject("f", bus.VerbProcs), `{"prat":1}`},
	} {
		m, err := cc.RequestWithContext(ctx, tt.subject, []byte(tt.body))
		if err != nil {
			t.Fatal(err)
		}
		desc := m.Header.Get(micro.ErrorHeader)
		if code := m.Header.Get(micro.ErrorCodeHeader); code != "400" || !strings.HasPrefix(desc, "cannot ") {
			t.Errorf("%s %s: code %q, %q; want 400 and a sentence saying what could not be done", tt.subject, tt.body, code, desc)
		}
	}

	// The same service answers a good request.
	mp, err := c.Get(ctx, id)
	if err != nil || mp.ID != id {
		t.Errorf("Get = %+v, %v", mp, err)
	}
}

// A stop that reaches the service once Close has begun (micro drains its
// subscriptions asynchronously, and a process subscription's callback may
// be running) is refused: no goroutine of the service outlives Close.
func TestStopAfterCloseIsRefused(t *testing.T) {
	_, nc := embeddedServer(t)
	svc := New(nc, Config{NodeID: "f"})
	if err := svc.Serve(&fakeSupervisor{t: t}); err != nil {
		t.Fatal(err)
	}
	if err := svc.Close(); err != nil {
		t.Fatal(err)
	}
	inbox := nc.NewInbox()
	replies, err := nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	svc.handleProc("proc_fake", &nats.Msg{Subject: bus.ProcSubject("proc_fake", bus.VerbStop), Reply: inbox, Sub: replies})
	svc.wg.Wait() // without the refusal, Stop runs here, after Close
	m, err := replies.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.Get(micro.ErrorHeader) == "" {
		t.Errorf("stop after Close answered %q, want an error", m.Data)
	}
}

// A node's own control plane (its reconciler, the spawns it hands on)
// takes the cluster's view from the node's watcher, not from whichever
// node answers corral.registry: that may be one just back from a
// partition, which has not heard the others again yet.
func TestTheNodesControlUsesItsOwnView(t *testing.T) {
	_, nc := embeddedServer(t)
	svc := New(nc, Config{NodeID: "f", HeartbeatInterval: 100 * time.Millisecond})
	defer svc.Close()
	if err := svc.Serve(&fakeSupervisor{t: t}); err != nil {
		t.Fatal(err)
	}
	await.Until(t, 10*time.Second, "the node's view", func() bool {
		_, ok := svc.presence.View(api.RegistryRequest{})
		return ok
	})
	var asked atomic.Int32
	mon, err := nc.Subscribe(bus.SubjectRegistry, func(*nats.Msg) { asked.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	defer mon.Unsubscribe()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	nodes, err := svc.control.Nodes(t.Context())
	if err != nil || len(nodes) != 1 || nodes[0].ID != "f" {
		t.Fatalf("nodes = %+v, %v", nodes, err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if n := asked.Load(); n != 0 {
		t.Errorf("the node's control asked corral.registry %d times, want its own view", n)
	}
}

// embeddedServer starts a server without JetStream and returns it with a
// connection to it, both closed when the test ends.
func embeddedServer(t *testing.T) (*embedded.Server, *nats.Conn) {
	t.Helper()
	srv, err := embedded.Start(embedded.Config{Listen: "127.0.0.1:-1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := srv.Connect("node")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return srv, nc
}
