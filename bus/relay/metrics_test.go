package relay_test

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/corral-run/corral/bus"
	"github.com/corral-run/corral/bus/relay"
	"github.com/corral-run/corral/internal/await"
	"github.com/corral-run/corral/internal/natstest"
	"github.com/corral-run/corral/internal/testnode"
)

// StorePending counts the durable events waiting for the stream: they
// wait while no stream captures their subject, and are gone once stored.
func TestStorePending(t *testing.T) {
	srv := testnode.StartServer(t, true)
	js, _ := jetstream.New(testnode.Connect(t, srv.ClientURL()))
	ctx := testnode.Context(t)
	cfg := jetstream.StreamConfig{Name: bus.StreamName, Subjects: []string{"process.other.>"}, Duplicates: time.Minute}
	if _, err := js.CreateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	r := testnode.NewRelay(t, testnode.Connect(t, srv.ClientURL()), relay.Config{Durable: true, Buffer: 8})
	done := make(chan error, 3)
	for i := range 3 {
		if err := r.Publish(event(i, nil, func(err error) { done <- err })); err != nil {
			t.Fatal(err)
		}
	}
	if got := r.StorePending(); got != 3 {
		t.Errorf("StorePending = %d with 3 events unstored, want 3", got)
	}
	cfg.Subjects = []string{bus.SubjectAll}
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	await.Until(t, 10*time.Second, "no event pending", func() bool { return r.StorePending() == 0 })
}

// Backlog counts what waits for NATS to come back.
func TestBacklogLength(t *testing.T) {
	ns := natstest.Start(t)
	nc := testnode.Connect(t, ns.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond), nats.ReconnectBufSize(256))
	r := testnode.NewRelay(t, nc, relay.Config{Buffer: 100})
	ns.Stop()
	waitStatus(t, nc, nats.RECONNECTING)
	for i := range 20 {
		if err := r.Publish(event(i, nil, nil)); err != nil {
			t.Fatal(err)
		}
	}
	if got := r.Backlog(); got == 0 || got > 20 {
		t.Errorf("Backlog = %d with 20 events published during an outage, want some of them", got)
	}
	ns.Restart()
	await.Until(t, 10*time.Second, "an empty backlog", func() bool { return r.Backlog() == 0 })
}
