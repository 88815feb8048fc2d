package control_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus"
	"github.com/corral-run/corral/bus/control"
	"github.com/corral-run/corral/internal/testnode"
)

func TestEvents(t *testing.T) {
	n := testnode.StartOne(t)
	ctx := testnode.Context(t)
	evCtx, stop := context.WithCancel(ctx)
	got := make(chan control.Event, 16)
	done := make(chan error, 1)
	ready := make(chan struct{})
	go func() {
		done <- n.Ctl.Events(evCtx, "", func(e control.Event) { got <- e }, control.OnSubscribed(func() { close(ready) }),
			control.PendingLimits(64, 1<<20))
	}()
	select {
	case <-ready:
	case <-ctx.Done():
		t.Fatal("Events never subscribed")
	}

	mp, err := n.Ctl.Spawn(ctx, "", "sleeper", api.SpawnRequest{})
	if err != nil {
		t.Fatal(err)
	}
	// Published by hand, in order: plain text, nothing, and a subject
	// outside process.>, which must not arrive.
	pub := func(subject, data string) {
		if err := n.Conn.Publish(subject, []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	pub("other.subject", `{}`)
	pub("process.demo.note", "not json")
	pub("process.demo.empty", "")
	pub("process.demo.last", `{"n": 3}`)

	want := []struct{ subject, data string }{
		{bus.SubjectSpawned, fmt.Sprintf(`{"processId":%q,"name":"sleeper","pid":%d,"node":"n1"}`, mp.ID, mp.PID)},
		{"process.demo.note", `"not json"`},
		{"process.demo.empty", `null`},
		{"process.demo.last", `{"n": 3}`},
	}
	for _, w := range want {
		select {
		case e := <-got:
			if e.Subject != w.subject || string(e.Data) != w.data {
				t.Errorf("got %s %s, want %s %s", e.Subject, e.Data, w.subject, w.data)
			}
			if e.Headers == nil {
				t.Errorf("%s: Headers is nil", e.Subject)
			}
			if _, err := json.Marshal(e); err != nil {
				t.Errorf("%s: cannot marshal event: %v", e.Subject, err)
			}
			if e.Subject == bus.SubjectSpawned && (e.Header(bus.HeaderProcessID) != mp.ID || e.Header(bus.HeaderNode) != "n1") {
				t.Errorf("spawned headers = %v", e.Headers)
			}
		case <-ctx.Done():
			t.Fatalf("no event %s", w.subject)
		}
	}

	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Events returned %v after its context ended, want nil", err)
		}
	case <-ctx.Done():
		t.Fatal("Events did not return after its context ended")
	}
}

func TestEventsRefusesBadSubject(t *testing.T) {
	n := testnode.StartOne(t)
	err := n.Ctl.Events(testnode.Context(t), "process..x", func(control.Event) {})
	if err == nil || !strings.Contains(err.Error(), "cannot subscribe") {
		t.Errorf("err = %v, want cannot subscribe", err)
	}
}

func TestSubscribeDecodes(t *testing.T) {
	n := testnode.StartOne(t)
	ctx := testnode.Context(t)
	type result struct {
		v api.Spawned
		e control.Event
	}
	got := make(chan result, 4)
	bad := make(chan error, 4)
	sub, err := control.Subscribe(n.Conn, bus.SubjectSpawned, func(v api.Spawned, e control.Event) { got <- result{v, e} },
		control.OnDecodeError(func(err error, e control.Event) { bad <- err }))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := n.Conn.Flush(); err != nil {
		t.Fatal(err)
	}

	// A payload of the wrong shape goes to the error callback, not to fn.
	if err := n.Conn.Publish(bus.SubjectSpawned, []byte(`{"pid":"twelve"}`)); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-bad:
		if !strings.Contains(err.Error(), "cannot decode process.spawned payload") {
			t.Errorf("decode error = %v", err)
		}
	case r := <-got:
		t.Fatalf("fn got a payload that does not decode: %+v", r)
	case <-ctx.Done():
		t.Fatal("no decode error")
	}

	mp, err := n.Ctl.Spawn(ctx, "", "sleeper", api.SpawnRequest{})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-got:
		want := api.Spawned{ProcessID: mp.ID, Name: "sleeper", PID: mp.PID, Node: "n1"}
		if r.v != want {
			t.Errorf("decoded %+v, want %+v", r.v, want)
		}
		if r.e.Header(bus.HeaderProcessName) != "sleeper" {
			t.Errorf("headers = %v", r.e.Headers)
		}
	case err := <-bad:
		t.Fatal(err)
	case <-ctx.Done():
		t.Fatal("no spawned event")
	}
}

// Without OnDecodeError, a bad payload is skipped and the next one still
// arrives.
func TestSubscribeSkipsBadPayloads(t *testing.T) {
	n := testnode.StartOne(t)
	got := make(chan api.NodeLost, 2)
	sub, err := control.Subscribe(n.Conn, bus.SubjectNodeLost, func(v api.NodeLost, _ control.Event) { got <- v })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	cc, err := nats.Connect(n.Srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	if err := n.Conn.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, data := range []string{`[1]`, `{"node":"n2"}`} {
		if err := cc.Publish(bus.SubjectNodeLost, []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case v := <-got:
		if v.Node != "n2" {
			t.Errorf("got %+v, want node n2", v)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no node_lost event")
	}
}
