package bus

import (
	"context"
	"encoding/json"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/corral-run/corral/api"
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
func (f *fakeSupervisor) Stop(context.Context, string, syscall.Signal) (api.ManagedProcess, error) {
	return api.ManagedProcess{}, f.unexpected("Stop")
}
func (f *fakeSupervisor) StopAll(context.Context, syscall.Signal, string) ([]api.ManagedProcess, error) {
	return nil, f.unexpected("StopAll")
}
func (f *fakeSupervisor) Restart(context.Context, string) (api.ManagedProcess, error) {
	return api.ManagedProcess{}, f.unexpected("Restart")
}
func (f *fakeSupervisor) Send(string, json.RawMessage) error { return f.unexpected("Send") }
func (f *fakeSupervisor) Define(node.Definition) error       { return f.unexpected("Define") }
func (f *fakeSupervisor) Definitions() []node.Definition     { return nil }
func (f *fakeSupervisor) LogTail(string, int) (string, error) {
	return "", f.unexpected("LogTail")
}

// A request with a field the service does not know is refused with 400,
// which Control reports as ErrBadRequest, and the supervisor never sees it.
func TestBadRequestIsErrBadRequest(t *testing.T) {
	srv, err := StartServer(ServerConfig{Listen: "127.0.0.1:-1"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	nc, err := ConnectInProcess(srv, "fake")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	svc := NewService(nc, ServiceConfig{NodeID: "f"})
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
	c := NewControl(cc, WithTimeout(5*time.Second))
	ctx := t.Context()

	for _, tt := range []struct{ subject, body string }{
		{NodeSubject("f", VerbSpawn), `{"nmae":"fake"}`},
		{NodeSubject("f", VerbStopAll), `{"signal":"TERM","names":"x"}`},
		{ProcSubject(id, VerbStop), `{"sig":"TERM"}`},
		{ProcSubject(id, VerbLogs), `{"lines":"ten"}`},
	} {
		var reply json.RawMessage
		err := c.request(ctx, tt.subject, json.RawMessage(tt.body), &reply)
		var se *ServiceError
		if !errors.As(err, &se) || se.Code != 400 || !errors.Is(err, ErrBadRequest) {
			t.Errorf("%s %s: err = %#v, want a 400 ServiceError matching ErrBadRequest", tt.subject, tt.body, err)
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
	srv, err := StartServer(ServerConfig{Listen: "127.0.0.1:-1"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	nc, err := ConnectInProcess(srv, "fake")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	svc := NewService(nc, ServiceConfig{NodeID: "f"})
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
	svc.handleProc("proc_fake", &nats.Msg{Subject: ProcSubject("proc_fake", VerbStop), Reply: inbox, Sub: replies})
	svc.wg.Wait() // without the refusal, Stop runs here, after Close
	m, err := replies.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := decodeReply(m, nil); err == nil {
		t.Errorf("stop after Close answered %q, want an error", m.Data)
	}
}
