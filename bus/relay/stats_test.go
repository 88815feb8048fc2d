package relay_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus"
	"github.com/corral-run/corral/bus/relay"
	"github.com/corral-run/corral/internal/testnode"
	"github.com/corral-run/corral/node"
)

func statsReport(id string, rss float64, source string) node.Report {
	s := api.StatsReport{ProcessID: id, Name: "enc", Source: source}
	s.Stats.Memory.RSS = rss
	return node.Report{Kind: node.KindStats, ProcessID: id, Name: "enc", Payload: s}
}

// With StatsStore, the stats bucket holds the latest stats of each
// process, whoever measured them, until the process ends.
func TestStatsStoreKeepsTheLatest(t *testing.T) {
	srv := testnode.StartServer(t, true)
	ctx := testnode.Context(t)
	r := testnode.NewRelay(t, testnode.Connect(t, srv.ClientURL()), relay.Config{Stream: &relay.StreamConfig{}, StatsStore: true})
	if err := r.EnsureStream(ctx); err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(testnode.Connect(t, srv.ClientURL()))
	kv, err := js.KeyValue(ctx, bus.StatsBucket)
	if err != nil {
		t.Fatal(err)
	}
	w, err := kv.WatchAll(ctx, jetstream.UpdatesOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	next := func() jetstream.KeyValueEntry {
		t.Helper()
		select {
		case e := <-w.Updates():
			return e
		case <-ctx.Done():
			t.Fatal("no update of the stats bucket")
			return nil
		}
	}
	for _, rep := range []node.Report{statsReport("proc_a", 1, "node"), statsReport("proc_b", 2, "node"), statsReport("proc_a", 3, "client")} {
		if err := r.Publish(rep); err != nil {
			t.Fatal(err)
		}
		e := next()
		var got api.StatsReport
		if err := json.Unmarshal(e.Value(), &got); err != nil || e.Key() != rep.ProcessID || got != rep.Payload {
			t.Fatalf("bucket got %s = %s (%v), want %+v", e.Key(), e.Value(), err, rep.Payload)
		}
	}
	if got, err := kv.Get(ctx, "proc_a"); err != nil || !json.Valid(got.Value()) || got.Revision() != 3 {
		t.Errorf("proc_a: %v %v, want its third revision", got, err)
	}
	if err := r.Publish(node.Report{Kind: node.KindStopped, ProcessID: "proc_a", Name: "enc", Payload: api.Stopped{ProcessID: "proc_a", Name: "enc"}}); err != nil {
		t.Fatal(err)
	}
	if e := next(); e.Key() != "proc_a" || e.Operation() != jetstream.KeyValueDelete {
		t.Errorf("after the stop: %s %v, want proc_a deleted", e.Key(), e.Operation())
	}
	if _, err := kv.Get(ctx, "proc_a"); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Errorf("proc_a after its stop: %v", err)
	}
	if _, err := kv.Get(ctx, "proc_b"); err != nil {
		t.Errorf("proc_b: %v", err)
	}
}

// Without StatsStore there is no stats bucket.
func TestNoStatsStoreByDefault(t *testing.T) {
	srv := testnode.StartServer(t, true)
	ctx := testnode.Context(t)
	r := testnode.NewRelay(t, testnode.Connect(t, srv.ClientURL()), relay.Config{Stream: &relay.StreamConfig{}})
	if err := r.EnsureStream(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Publish(statsReport("proc_a", 1, "node")); err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(testnode.Connect(t, srv.ClientURL()))
	if _, err := js.KeyValue(ctx, bus.StatsBucket); !errors.Is(err, jetstream.ErrBucketNotFound) {
		t.Errorf("stats bucket without StatsStore: %v", err)
	}
}
