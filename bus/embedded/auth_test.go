package embedded_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus"
	"github.com/corral-run/corral/bus/control"
	"github.com/corral-run/corral/bus/embedded"
	"github.com/corral-run/corral/internal/testnode"
)

// usersServer starts a server with JetStream and three users, one per
// role, and a node on it (its own user, made up at start).
func usersServer(t *testing.T) (*embedded.Server, *testnode.Node) {
	t.Helper()
	srv := testnode.StartServerWith(t, embedded.Config{JetStream: true, Users: []embedded.User{
		{Name: "ops", Password: "ops-secret", Role: bus.RoleOperator},
		{Name: "eve", Password: "eve-secret", Role: bus.RoleViewer},
		{Name: "n2", Password: "n2-secret", Role: bus.RoleNode},
	}})
	n := testnode.Start(t, srv, testnode.Spec{ID: "n1", JetStream: true})
	return srv, n
}

// asUser connects as a user, with its own inbox prefix, and records the
// permission violations the server reports.
func asUser(t *testing.T, srv *embedded.Server, user, password string) (*nats.Conn, chan error) {
	t.Helper()
	errs := make(chan error, 16)
	nc := testnode.Connect(t, srv.ClientURL(), nats.UserInfo(user, password),
		nats.CustomInboxPrefix(bus.InboxPrefix(user)), nats.PermissionErrOnSubscribe(true),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case errs <- err:
			default:
			}
		}))
	return nc, errs
}

// wantRefused waits for the server to refuse something on subject.
func wantRefused(t *testing.T, errs chan error, what, subject string) {
	t.Helper()
	for {
		select {
		case err := <-errs:
			if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), subject) {
				return
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: the server did not refuse %s", what, subject)
		}
	}
}

func TestOperatorMayDriveButNotSpeakForNodes(t *testing.T) {
	srv, _ := usersServer(t)
	nc, errs := asUser(t, srv, "ops", "ops-secret")
	ctl := control.New(nc)
	ctx := testnode.Context(t)

	mp, err := ctl.Spawn(ctx, "", "sleeper", api.SpawnRequest{})
	if err != nil {
		t.Fatalf("operator spawn: %v", err)
	}
	if nodes, err := ctl.Nodes(ctx); err != nil || len(nodes) != 1 {
		t.Errorf("operator nodes: %+v, %v", nodes, err)
	}
	if res, err := ctl.List(ctx, api.ListRequest{}); err != nil || len(res.Processes) != 1 {
		t.Errorf("operator list: %+v, %v", res, err)
	}
	var replayed int
	if err := ctl.History(ctx, control.HistoryOptions{ProcessID: mp.ID}, func(control.Event) { replayed++ }); err != nil || replayed == 0 {
		t.Errorf("operator history: %d events, %v", replayed, err)
	}
	if _, err := ctl.Stop(ctx, mp.ID, ""); err != nil {
		t.Errorf("operator stop: %v", err)
	}

	// It may not speak for a child or a node, nor answer for one.
	if err := nc.Publish("process.sleeper.progress", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	wantRefused(t, errs, "operator publishing an event", "process.sleeper.progress")
	if _, err := nc.QueueSubscribe(bus.SpawnSubject("sleeper"), "spawn", func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	wantRefused(t, errs, "operator answering spawns", bus.SpawnSubject("sleeper"))
	if _, err := nc.Subscribe("_INBOX.>", func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	wantRefused(t, errs, "operator reading others' replies", "_INBOX.>")
}

func TestViewerMayWatchButNotDrive(t *testing.T) {
	srv, n := usersServer(t)
	ctx := testnode.Context(t)
	mp, err := n.Ctl.Spawn(ctx, "", "sleeper", api.SpawnRequest{})
	if err != nil {
		t.Fatal(err)
	}
	nc, _ := asUser(t, srv, "eve", "eve-secret")
	ctl := control.New(nc)

	if res, err := ctl.List(ctx, api.ListRequest{}); err != nil || len(res.Processes) != 1 {
		t.Errorf("viewer list: %+v, %v", res, err)
	}
	if got, err := ctl.Get(ctx, mp.ID); err != nil || got.ID != mp.ID {
		t.Errorf("viewer get: %+v, %v", got, err)
	}
	if _, err := ctl.Logs(ctx, mp.ID, 10); err != nil {
		t.Errorf("viewer logs: %v", err)
	}
	if nodes, err := ctl.Nodes(ctx); err != nil || len(nodes) != 1 {
		t.Errorf("viewer nodes: %+v, %v", nodes, err)
	}
	events := make(chan control.Event, 1)
	ectx, cancel := context.WithCancel(ctx)
	defer cancel()
	subscribed := make(chan struct{})
	go func() {
		_ = ctl.Events(ectx, bus.SubjectStopped, func(e control.Event) { events <- e }, control.OnSubscribed(func() { close(subscribed) }))
	}()
	<-subscribed

	start := time.Now()
	for what, call := range map[string]func() error{
		"spawn": func() error { _, err := ctl.Spawn(ctx, "", "sleeper", api.SpawnRequest{}); return err },
		"stop":  func() error { _, err := ctl.Stop(ctx, mp.ID, ""); return err },
		"send":  func() error { return ctl.Send(ctx, mp.ID, []byte(`{}`)) },
		"define": func() error {
			_, err := ctl.Define(ctx, "n1", api.DefinitionInfo{Name: "x", Command: "/bin/true"})
			return err
		},
	} {
		err := call()
		if !errors.Is(err, control.ErrNotPermitted) || !strings.HasPrefix(err.Error(), "not permitted: ") {
			t.Errorf("viewer %s: %v, want a not-permitted error", what, err)
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the refusals took %v: they must come at once, not as timeouts", d)
	}
	// Nothing was stopped; an operator's stop is seen by the viewer.
	if _, err := n.Ctl.Stop(ctx, mp.ID, ""); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-events:
		if e.Header(bus.HeaderProcessID) != mp.ID {
			t.Errorf("viewer saw %s", e.Header(bus.HeaderProcessID))
		}
	case <-ctx.Done():
		t.Fatal("the viewer saw no process.stopped")
	}
}

// Without users, the server is open to anyone on loopback, as before.
func TestNoUsersIsOpenOnLoopback(t *testing.T) {
	srv := testnode.StartServer(t, false)
	testnode.Start(t, srv, testnode.Spec{ID: "n1"})
	ctl := control.New(testnode.Connect(t, srv.ClientURL()))
	if _, err := ctl.Spawn(testnode.Context(t), "", "sleeper", api.SpawnRequest{}); err != nil {
		t.Fatal(err)
	}
}

func TestExposedListenerNeedsAuthentication(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  embedded.Config
		want string
	}{
		{"client", embedded.Config{Listen: "0.0.0.0:-1"}, "the client listener 0.0.0.0:-1 (nats.listen)"},
		{"route", embedded.Config{Listen: "127.0.0.1:-1", Cluster: embedded.ClusterConfig{Listen: "0.0.0.0:-1"}},
			"the route listener 0.0.0.0:-1 (nats.cluster.listen)"},
		{"leaf", embedded.Config{Listen: "127.0.0.1:-1", Leaf: embedded.LeafConfig{Listen: "0.0.0.0:-1"}},
			"the leaf node listener 0.0.0.0:-1 (nats.leaf.listen)"},
	} {
		_, err := embedded.Start(tc.cfg)
		if !errors.Is(err, embedded.ErrInsecure) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "insecure = true") {
			t.Errorf("%s: %v, want ErrInsecure naming %q and the way out", tc.name, err, tc.want)
		}
	}
	cfg := embedded.Config{Listen: "0.0.0.0:-1", Insecure: true}
	srv, err := embedded.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	if open := srv.Insecure(); len(open) != 1 || !strings.Contains(open[0], "client listener") {
		t.Errorf("Insecure() = %v, want the client listener", open)
	}
}

func TestBadUsersAreRefused(t *testing.T) {
	for _, tc := range []struct {
		user embedded.User
		want string
	}{
		{embedded.User{Name: "ops", Password: "x", Role: "admin"}, `role "admin" is not node, operator or viewer`},
		{embedded.User{Name: "o.ps", Password: "x", Role: bus.RoleViewer}, `user name "o.ps" must be`},
		{embedded.User{Name: "ops", Role: bus.RoleViewer}, `user "ops" has no password`},
		{embedded.User{Nkey: "SUAXX", Role: bus.RoleViewer}, `is not a user's public nkey`},
	} {
		_, err := embedded.Start(embedded.Config{Listen: "127.0.0.1:-1", Users: []embedded.User{tc.user}})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.user, err, tc.want)
		}
	}
}

// With users, a node keeps the latest stats (the stats bucket) and a
// viewer reads them.
func TestViewerReadsTheLatestStats(t *testing.T) {
	srv := testnode.StartServerWith(t, embedded.Config{JetStream: true, Users: []embedded.User{
		{Name: "eve", Password: "eve-secret", Role: bus.RoleViewer},
	}})
	spec := testnode.Spec{ID: "n1", JetStream: true, StatsInterval: 50 * time.Millisecond}
	spec.Service.Relay.StatsStore = true
	n := testnode.Start(t, srv, spec)
	ctx := testnode.Context(t)
	mp, err := n.Ctl.Spawn(ctx, "", "sleeper", api.SpawnRequest{})
	if err != nil {
		t.Fatal(err)
	}
	nc, errs := asUser(t, srv, "eve", "eve-secret")
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, bus.StatsBucket)
	if err != nil {
		t.Fatalf("viewer opening %s: %v", bus.StatsBucket, err)
	}
	w, err := kv.Watch(ctx, mp.ID)
	if err != nil {
		t.Fatalf("viewer watching %s: %v", bus.StatsBucket, err)
	}
	defer w.Stop()
	for {
		select {
		case e := <-w.Updates():
			if e == nil {
				continue // the values there were: maybe none yet
			}
			var s api.StatsReport
			if err := json.Unmarshal(e.Value(), &s); err != nil || s.ProcessID != mp.ID || s.Source != "node" {
				t.Fatalf("stats of %s: %s (%v)", mp.ID, e.Value(), err)
			}
			if err := nc.Publish(bus.StatsKeySubject(mp.ID), []byte(`{}`)); err != nil {
				t.Fatal(err)
			}
			wantRefused(t, errs, "viewer writing stats", bus.StatsKeySubject(mp.ID))
			return
		case err := <-errs:
			t.Fatalf("viewer refused: %v", err)
		case <-ctx.Done():
			t.Fatalf("no stats of %s in %s", mp.ID, bus.StatsBucket)
		}
	}
}
