package control_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/corral-run/corral/bus"
	"github.com/corral-run/corral/bus/control"
	"github.com/corral-run/corral/bus/embedded"
	"github.com/corral-run/corral/bus/relay"
	"github.com/corral-run/corral/internal/testnode"
	"github.com/corral-run/corral/node"
)

func TestHistory(t *testing.T) {
	srv := testnode.StartServer(t, true)
	r := testnode.NewRelay(t, testnode.Connect(t, srv.ClientURL()), relay.Config{Durable: true, Stream: &relay.StreamConfig{}})
	ctx := testnode.Context(t)
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
		publish(event(i))
	}
	publish(node.Report{Kind: node.KindEvent, ProcessID: "proc_b", Name: "other", Event: "note", MsgID: "proc_b:1", Raw: []byte(`{}`)})

	ctl := control.New(testnode.Connect(t, srv.ClientURL()))
	replay := func(opts control.HistoryOptions) []control.Event {
		t.Helper()
		var got []control.Event
		if err := ctl.History(ctx, opts, func(e control.Event) { got = append(got, e) }); err != nil {
			t.Fatal(err)
		}
		return got
	}
	all := replay(control.HistoryOptions{})
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
	if got := replay(control.HistoryOptions{ProcessID: "proc_b"}); len(got) != 1 || got[0].Subject != "process.other.note" {
		t.Errorf("history of proc_b = %v", got)
	}
	if got := replay(control.HistoryOptions{Subject: "process.other.>"}); len(got) != 1 || got[0].Header(bus.HeaderProcessID) != "proc_b" {
		t.Errorf("history of process.other.> = %v", got)
	}
	if got := replay(control.HistoryOptions{Subjects: []string{"process.nothing.>", "process.other.note"}}); len(got) != 1 || got[0].Seq != 4 {
		t.Errorf("history of two subjects = %v", got)
	}
	if got := replay(control.HistoryOptions{Since: time.Now().Add(time.Hour)}); len(got) != 0 {
		t.Errorf("history from the future = %v", got)
	}
	if got := replay(control.HistoryOptions{Since: all[2].Time}); len(got) < 2 || got[len(got)-1].Seq != 4 {
		t.Errorf("history since the third event = %v", got)
	}
	// Heartbeats and stats are not kept: asking for them alone is an error
	// that says so.
	for _, subject := range []string{bus.SubjectHeartbeat, bus.SubjectStats, "process.enc.stats", "process.*.stats"} {
		err := ctl.History(ctx, control.HistoryOptions{Subject: subject}, func(control.Event) {})
		if !errors.Is(err, control.ErrNotFound) || !strings.Contains(err.Error(), "not kept") {
			t.Errorf("history of %s: %v, want ErrNotFound saying it is not kept", subject, err)
		}
	}

	// After a sequence: what follows it, no more, no less; BufferBytes
	// only bounds the fetching.
	if got := replay(control.HistoryOptions{AfterSeq: 2, BufferBytes: 1 << 10}); len(got) != 2 || got[0].Seq != 3 || got[1].Seq != 4 {
		t.Errorf("history after seq 2 = %v", got)
	}
	if got := replay(control.HistoryOptions{AfterSeq: 4}); len(got) != 0 {
		t.Errorf("history after the last seq = %v", got)
	}
	if hs, err := ctl.HistoryState(ctx); err != nil || !slices.Equal(hs.Subjects, bus.HistorySubjects()) || hs.LastSeq != 4 {
		t.Errorf("HistoryState = %+v, %v", hs, err)
	}

	// New: nothing of the past, what is stored from now on.
	nctx, stopNew := context.WithCancel(ctx)
	newOnes := make(chan control.Event, 16)
	newEnded := make(chan error, 1)
	newReady := make(chan struct{})
	go func() {
		newEnded <- ctl.History(nctx, control.HistoryOptions{New: true, Follow: true, Since: start},
			func(e control.Event) { newOnes <- e }, control.OnSubscribed(func() { close(newReady) }))
	}()
	<-newReady
	publish(node.Report{Kind: node.KindEvent, ProcessID: "proc_b", Name: "other", Event: "note", MsgID: "proc_b:2", Raw: []byte(`{}`)})
	select {
	case e := <-newOnes:
		if e.Seq != 5 {
			t.Errorf("the first new event has seq %d, want 5", e.Seq)
		}
	case <-ctx.Done():
		t.Fatal("no new event")
	}
	stopNew()
	if err := <-newEnded; err != nil {
		t.Errorf("History after its context ended: %v", err)
	}

	// Follow: the replay, then what is stored afterwards, until ctx ends.
	fctx, stop := context.WithCancel(ctx)
	got := make(chan control.Event, 16)
	ended := make(chan error, 1)
	ready := make(chan struct{})
	go func() {
		ended <- ctl.History(fctx, control.HistoryOptions{ProcessID: "proc_a", Follow: true},
			func(e control.Event) { got <- e }, control.OnSubscribed(func() { close(ready) }))
	}()
	<-ready
	publish(event(3))
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
	ctx := testnode.Context(t)
	noop := func(control.Event) {}
	ctl := control.New(testnode.Connect(t, testnode.StartServer(t, true).ClientURL()))
	if err := ctl.History(ctx, control.HistoryOptions{}, noop); !errors.Is(err, control.ErrNotFound) {
		t.Errorf("History without the stream = %v, want ErrNotFound", err)
	}
	if _, err := ctl.HistoryState(ctx); !errors.Is(err, control.ErrNotFound) {
		t.Errorf("HistoryState without the stream = %v, want ErrNotFound", err)
	}
	srv, err := embedded.Start(embedded.Config{Listen: "127.0.0.1:-1", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	ctl = control.New(testnode.Connect(t, srv.ClientURL()))
	if err := ctl.History(ctx, control.HistoryOptions{}, noop); !errors.Is(err, bus.ErrNoJetStream) {
		t.Errorf("History without JetStream = %v, want ErrNoJetStream", err)
	}
	if _, err := ctl.HistoryState(ctx); !errors.Is(err, bus.ErrNoJetStream) {
		t.Errorf("HistoryState without JetStream = %v, want ErrNoJetStream", err)
	}
}

// event is the i-th event of process proc_a, with the id a child would
// give it.
func event(i int) node.Report {
	return node.Report{Kind: node.KindEvent, ProcessID: "proc_a", Name: "enc", Event: "progress",
		MsgID: "proc_a:" + strconv.Itoa(i), Raw: fmt.Appendf(nil, `{"processId":"proc_a","name":"enc","n":%d}`, i)}
}
