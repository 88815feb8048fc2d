package relay_test

import (
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus"
	"github.com/corral-run/corral/bus/relay"
	"github.com/corral-run/corral/internal/testnode"
	"github.com/corral-run/corral/node"
)

// Heartbeats and stats nobody listens to are not sent (a child's ack of a
// heartbeat still comes); once someone listens, they are, and every other
// report is sent whoever listens.
func TestLiveOnlyGoesOnlyToListeners(t *testing.T) {
	srv := testnode.StartServer(t, false)
	nc := testnode.Connect(t, srv.ClientURL())
	r := testnode.NewRelay(t, nc, relay.Config{Listened: srv.Listened})
	ref := []byte(`{"processId":"proc_a","name":"enc"}`)
	publish := func() (acked bool) {
		t.Helper()
		hb := node.Report{Kind: node.KindHeartbeat, ProcessID: "proc_a", Name: "enc", Raw: ref, MsgID: "proc_a:1",
			Done: func(err error) { acked = err == nil }}
		stats := node.Report{Kind: node.KindStats, ProcessID: "proc_a", Name: "enc",
			Payload: api.StatsReport{ProcessID: "proc_a", Name: "enc", Source: "node"}}
		for _, rep := range []node.Report{hb, stats, {Kind: node.KindConnected, ProcessID: "proc_a", Name: "enc", Raw: ref}} {
			if err := r.Publish(rep); err != nil {
				t.Fatal(err)
			}
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
		return acked
	}
	if !publish() {
		t.Error("a heartbeat nobody listens to was not acked")
	}
	if got := nc.Stats().OutMsgs; got != 1 {
		t.Errorf("%d messages sent with nobody listening, want 1 (process.connected)", got)
	}

	sub := testnode.Connect(t, srv.ClientURL())
	msgs := make(chan *nats.Msg, 16)
	for _, s := range []string{bus.SubjectHeartbeat, bus.SubjectProcessStats, bus.SubjectStats} {
		if _, err := sub.ChanSubscribe(s, msgs); err != nil {
			t.Fatal(err)
		}
	}
	if err := sub.Flush(); err != nil {
		t.Fatal(err)
	}
	if !publish() {
		t.Error("a heartbeat was not acked")
	}
	ctx := testnode.Context(t)
	var got []string
	for len(got) < 3 {
		select {
		case m := <-msgs:
			got = append(got, m.Subject)
		case <-ctx.Done():
			t.Fatalf("received %v, want a heartbeat and both stats", got)
		}
	}
	if want := []string{bus.SubjectHeartbeat, "process.enc.stats", bus.SubjectStats}; got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Errorf("received %v, want %v", got, want)
	}
}
