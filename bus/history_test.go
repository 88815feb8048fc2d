package bus_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/corral-run/corral/bus"
	"github.com/corral-run/corral/node"
)

func TestHistory(t *testing.T) {
	srv := jsServer(t)
	r := newRelay(t, connect(t, srv.ClientURL()), bus.RelayConfig{Durable: true, Stream: &bus.StreamConfig{}})
	ctx := testContext(t)
	if err := r.EnsureStream(ctx); err != nil {
		t.Fatal(err)
	}
	// Three events of proc_a, then proc_b's stop; durable, so stored in
	// this order once acked.
	publish := func(rep node.Report) {
		t.Helper()
		done := make(chan error, 1)
		rep.Done = func(err error) { done <- err }
		if err := r.Publish(rep); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	for i := range 3 {
		publish(event(i, nil, nil))
	}
	publish(node.Report{Kind: node.KindEvent, ProcessID: "proc_b", Name: "other", Event: "note", MsgID: "proc_b:1", Raw: []byte(`{}`)})

	ctl := bus.NewControl(connect(t, srv.ClientURL()))
	replay := func(opts bus.HistoryOptions) []bus.Event {
		t.Helper()
		var got []bus.Event
		if err := ctl.History(ctx, opts, func(e bus.Event) { got = append(got, e) }); err != nil {
			t.Fatal(err)
		}
		return got
	}
	all := replay(bus.HistoryOptions{})
	if len(all) != 4 {
		t.Fatalf("replayed %d events, want 4: %v", len(all), all)
	}
	for i, e := range all {
		if e.Seq != uint64(i+1) || e.Time.Before(start.Add(-time.Second)) || e.Time.After(time.Now()) {
			t.Errorf("event %d: seq %d time %v", i, e.Seq, e.Time)
		}
	}
	if e := all[1]; e.Subject != "process.enc.progress" || string(e.Data) != `{"processId":"proc_a","name":"enc","n":1}` ||
		e.Header(bus.HeaderMsgID) != "proc_a:1" || e.Header(bus.HeaderProcessID) != "proc_a" || e.Header(bus.HeaderNode) != "n1" {
		t.Errorf("second event = %+v", e)
	}
	if got := replay(bus.HistoryOptions{ProcessID: "proc_b"}); len(got) != 1 || got[0].Subject != "process.other.note" {
		t.Errorf("history of proc_b = %v", got)
	}
	if got := replay(bus.HistoryOptions{Subject: "process.other.>"}); len(got) != 1 || got[0].Header(bus.HeaderProcessID) != "proc_b" {
		t.Errorf("history of process.other.> = %v", got)
	}
	if got := replay(bus.HistoryOptions{Since: time.Now().Add(time.Hour)}); len(got) != 0 {
		t.Errorf("history from the future = %v", got)
	}
	if got := replay(bus.HistoryOptions{Since: all[2].Time}); len(got) < 2 || got[len(got)-1].Seq != 4 {
		t.Errorf("history since the third event = %v", got)
	}

	// Follow: the replay, then what is stored afterwards, until ctx ends.
	fctx, stop := context.WithCancel(ctx)
	got := make(chan bus.Event, 16)
	ended := make(chan error, 1)
	ready := make(chan struct{})
	go func() {
		ended <- ctl.History(fctx, bus.HistoryOptions{ProcessID: "proc_a", Follow: true},
			func(e bus.Event) { got <- e }, bus.OnSubscribed(func() { close(ready) }))
	}()
	<-ready
	publish(event(3, nil, nil))
	for i := range 4 {
		select {
		case e := <-got:
			if e.Header(bus.HeaderMsgID) != "proc_a:"+strconv.Itoa(i) {
				t.Errorf("followed event %d = %s", i, e.Header(bus.HeaderMsgID))
			}
		case <-ctx.Done():
			t.Fatalf("followed %d events of 4", i)
		}
	}
	stop()
	if err := <-ended; err != nil {
		t.Errorf("History after its context ended: %v", err)
	}
}

func TestHistoryWithoutStream(t *testing.T) {
	ctx := testContext(t)
	noop := func(bus.Event) {}
	ctl := bus.NewControl(connect(t, jsServer(t).ClientURL()))
	if err := ctl.History(ctx, bus.HistoryOptions{}, noop); !errors.Is(err, bus.ErrNotFound) {
		t.Errorf("History without the stream = %v, want ErrNotFound", err)
	}
	srv, err := bus.StartServer(bus.ServerConfig{Listen: "127.0.0.1:-1", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	ctl = bus.NewControl(connect(t, srv.ClientURL()))
	if err := ctl.History(ctx, bus.HistoryOptions{}, noop); !errors.Is(err, bus.ErrNoJetStream) {
		t.Errorf("History without JetStream = %v, want ErrNoJetStream", err)
	}
}
