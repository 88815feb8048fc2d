package relay_test

import (
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus"
	"github.com/corral-run/corral/bus/relay"
	"github.com/corral-run/corral/internal/testnode"
	"github.com/corral-run/corral/node"
)

// The history keeps the lifecycle messages and the children's events;
// heartbeats and stats (both subjects, from the node and from the child)
// reach live subscribers only. A stream set up before, on all of
// process.>, is brought to that.
func TestHistoryKeepsLifecycleAndEvents(t *testing.T) {
	srv := testnode.StartServer(t, true)
	ctx := testnode.Context(t)
	js, _ := jetstream.New(testnode.Connect(t, srv.ClientURL()))
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: bus.StreamName, Subjects: []string{bus.SubjectAll}}); err != nil {
		t.Fatal(err) // as an earlier version made it
	}
	live := testnode.Connect(t, srv.ClientURL())
	got := make(chan *nats.Msg, 64)
	if _, err := live.ChanSubscribe(bus.SubjectAll, got); err != nil {
		t.Fatal(err)
	}
	if err := live.Flush(); err != nil {
		t.Fatal(err)
	}
	r := testnode.NewRelay(t, testnode.Connect(t, srv.ClientURL()), relay.Config{Durable: true, Stream: &relay.StreamConfig{}})
	if err := r.EnsureStream(ctx); err != nil {
		t.Fatal(err)
	}
	ref := []byte(`{"processId":"proc_a","name":"enc"}`)
	done := make(chan error, 1)
	for _, rep := range []node.Report{
		{Kind: node.KindSpawned, Payload: api.Spawned{ProcessID: "proc_a", Name: "enc", PID: 1, Node: "n1"}},
		{Kind: node.KindConnected, Raw: ref},
		{Kind: node.KindHeartbeat, Raw: ref},
		{Kind: node.KindStats, Payload: api.StatsReport{ProcessID: "proc_a", Name: "enc", Source: "node"}},
		{Kind: node.KindStats, Payload: api.StatsReport{ProcessID: "proc_a", Name: "enc", Source: "client"}},
		{Kind: node.KindWatchdogStale, Payload: api.WatchdogStale{ProcessID: "proc_a", Name: "enc", Reason: "heartbeat"}},
		// Last: once it is stored, the stream has seen everything before it.
		{Kind: node.KindEvent, Event: "progress", MsgID: "proc_a:1", Raw: []byte(`{"processId":"proc_a","name":"enc","percent":5}`),
			Done: func(err error) { done <- err }},
	} {
		rep.ProcessID, rep.Name = "proc_a", "enc"
		if err := r.Publish(rep); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var subjects []string
	for len(subjects) < 9 {
		select {
		case m := <-got:
			subjects = append(subjects, m.Subject)
		case <-ctx.Done():
			t.Fatalf("live subscriber got %v", subjects)
		}
	}
	want := []string{bus.SubjectSpawned, bus.SubjectConnected, bus.SubjectHeartbeat, "process.enc.stats", bus.SubjectStats,
		"process.enc.stats", bus.SubjectStats, bus.SubjectWatchdogStale, "process.enc.progress"}
	if !slices.Equal(subjects, want) {
		t.Errorf("live subscriber got %v, want %v", subjects, want)
	}
	st, err := js.Stream(ctx, bus.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	c, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Fetch(int(info.State.Msgs), jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var stored []string
	for m := range msgs.Messages() {
		stored = append(stored, m.Subject())
	}
	if want := []string{bus.SubjectSpawned, bus.SubjectConnected, bus.SubjectWatchdogStale, "process.enc.progress"}; !slices.Equal(stored, want) {
		t.Errorf("the history holds %v, want %v", stored, want)
	}
}
