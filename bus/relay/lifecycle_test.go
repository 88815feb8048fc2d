package relay_test

import (
	"bytes"
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus"
	"github.com/corral-run/corral/bus/relay"
	"github.com/corral-run/corral/internal/await"
	"github.com/corral-run/corral/internal/natstest"
	"github.com/corral-run/corral/internal/testnode"
	"github.com/corral-run/corral/node"
)

// attempts counts what is published on process.> by subject: a plain
// subscriber that also takes the subjects, so that an attempt the stream
// does not capture gets no answer at all (no "no responders"), as when the
// stream has no leader.
type attempts struct {
	mu   sync.Mutex
	seen map[string]int
}

func watchAttempts(t *testing.T, url string) *attempts {
	t.Helper()
	a := &attempts{seen: map[string]int{}}
	nc := testnode.Connect(t, url)
	if _, err := nc.Subscribe(bus.SubjectAll, func(m *nats.Msg) {
		a.mu.Lock()
		a.seen[m.Subject]++
		a.mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return a
}

func (a *attempts) of(subject string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.seen[subject]
}

// Lifecycle messages published while the stream cannot store them never
// make their publisher wait; they are sent again while nothing answers,
// and stored exactly once as soon as the stream can.
func TestLifecycleStoredOnceTheStreamCan(t *testing.T) {
	srv := testnode.StartServer(t, true)
	fix := testnode.StalledStream(t, srv.ClientURL())
	seen := watchAttempts(t, srv.ClientURL())
	r := testnode.NewRelay(t, testnode.Connect(t, srv.ClientURL()), relay.Config{Durable: true, AckTimeout: 100 * time.Millisecond})

	code := 3
	reports := []node.Report{
		{Kind: node.KindSpawned, ProcessID: "proc_a", Name: "enc", Payload: api.Spawned{ProcessID: "proc_a", Name: "enc", PID: 42, Node: "n1"}},
		{Kind: node.KindCrashed, ProcessID: "proc_a", Name: "enc", Payload: api.Crashed{ProcessID: "proc_a", Name: "enc", ExitCode: &code, Error: "boom"}},
	}
	for _, rep := range reports {
		returned := make(chan error, 1)
		go func() { returned <- r.Publish(rep) }()
		select {
		case err := <-returned:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Publish of a lifecycle message waits for the stream")
		}
	}
	lost := &nats.Msg{Subject: bus.SubjectNodeLost, Data: []byte(`{"node":"n2"}`),
		Header: nats.Header{bus.HeaderNode: {"n1"}, bus.HeaderMsgID: {"node_lost:n2:1"}}}
	if err := r.PublishLifecycle(lost); err != nil {
		t.Fatal(err)
	}
	subjects := []string{bus.SubjectSpawned, bus.SubjectCrashed, bus.SubjectNodeLost}
	await.Until(t, 10*time.Second, "each lifecycle message sent again while the stream does not answer", func() bool {
		for _, s := range subjects {
			if seen.of(s) < 3 {
				return false
			}
		}
		return true
	})
	if n := r.StorePending(); n != len(subjects) {
		t.Errorf("StorePending = %d while the stream does not answer, want %d", n, len(subjects))
	}

	fix()
	await.Until(t, 10*time.Second, "the lifecycle messages stored", func() bool { return r.StorePending() == 0 })
	ids := natstest.StoredIDs(t, testnode.Connect(t, srv.ClientURL()))
	if len(ids) != len(subjects) || ids["node_lost:n2:1"] != 1 {
		t.Errorf("stored %v, want %d messages (node_lost:n2:1 among them), once each", ids, len(subjects))
	}
	for id, n := range ids {
		if n != 1 {
			t.Errorf("%s stored %d times", id, n)
		}
	}
	if r.Dropped() != 0 {
		t.Errorf("Dropped = %d", r.Dropped())
	}
}

// A relay whose stream is not there yet (a node that starts while its
// cluster's stream has no leader) acks an event only once it is stored:
// never as merely handed to NATS.
func TestDurableEventWaitsForTheStream(t *testing.T) {
	srv := testnode.StartServer(t, true)
	seen := watchAttempts(t, srv.ClientURL())
	nc := testnode.Connect(t, srv.ClientURL())
	r := testnode.NewRelay(t, nc, relay.Config{Durable: true, Stream: &relay.StreamConfig{}, AckTimeout: 100 * time.Millisecond})
	done := make(chan error, 1)
	if err := r.Publish(event(1, nil, func(err error) { done <- err })); err != nil {
		t.Fatal(err)
	}
	subject := "process.enc.progress"
	await.Until(t, 10*time.Second, "the event sent again while there is no stream", func() bool { return seen.of(subject) >= 3 })
	select {
	case err := <-done:
		t.Fatalf("Done(%v) before there is a stream to store the event", err)
	default:
	}
	if err := r.EnsureStream(testnode.Context(t)); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-testnode.Context(t).Done():
		t.Fatal("not acked once the stream is there")
	}
	if ids := natstest.StoredIDs(t, nc); len(ids) != 1 || ids["proc_a:1"] != 1 {
		t.Errorf("stored %v, want proc_a:1 once", ids)
	}
}

// While NATS is away and the collector's window holds lifecycle messages
// alone (no deadline of their own), its wait for the connection is still
// bounded: a child's event that arrives meanwhile is refused once its
// StoreTimeout has passed, not held until NATS comes back.
func TestEventDuringOutageBehindLifecycleIsRefusedInTime(t *testing.T) {
	ns := natstest.Start(t)
	js, _ := jetstream.New(testnode.Connect(t, ns.URL()))
	if _, err := relay.EnsureStream(testnode.Context(t), js, relay.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	nc := testnode.Connect(t, ns.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	r := testnode.NewRelay(t, nc, relay.Config{Durable: true, AckTimeout: 100 * time.Millisecond, StoreTimeout: 500 * time.Millisecond})

	ns.Stop()
	defer ns.Restart() // before the relay's Close, which would wait for the lifecycle message
	waitStatus(t, nc, nats.RECONNECTING)
	spawned := node.Report{Kind: node.KindSpawned, ProcessID: "proc_a", Name: "enc", Payload: api.Spawned{ProcessID: "proc_a", Name: "enc", PID: 42, Node: "n1"}}
	if err := r.Publish(spawned); err != nil {
		t.Fatal(err)
	}
	// Nothing announces it: the collector's goroutine is seen waiting for
	// the connection, its window holding the lifecycle message alone.
	await.Until(t, 10*time.Second, "the collector waiting for NATS with a lifecycle message", collectorWaitsForNATS)

	done := make(chan error, 1)
	if err := r.Publish(event(1, nil, func(err error) { done <- err })); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Done(%v) while NATS is away, want a refusal past StoreTimeout", err)
		}
	case <-testnode.Context(t).Done():
		t.Fatal("an event that arrived while the collector waited for NATS is held until NATS comes back")
	}
	if s := nc.Status(); s != nats.RECONNECTING {
		t.Errorf("connection %v when the event was settled, want it still away", s)
	}
}

// collectorWaitsForNATS reports whether a goroutine of the relay's
// collector is blocked in its wait for the connection (Relay.retry).
func collectorWaitsForNATS() bool {
	buf := make([]byte, 64<<10)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	for g := range bytes.SplitSeq(buf, []byte("\n\n")) {
		if bytes.Contains(g, []byte("relay.(*link).wait(")) && bytes.Contains(g, []byte("relay.(*Relay).retry(")) {
			return true
		}
	}
	return false
}
