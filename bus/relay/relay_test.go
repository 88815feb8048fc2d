package relay_test

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus"
	"github.com/corral-run/corral/bus/embedded"
	"github.com/corral-run/corral/bus/relay"
	"github.com/corral-run/corral/internal/await"
	"github.com/corral-run/corral/internal/natstest"
	"github.com/corral-run/corral/internal/testnode"
	"github.com/corral-run/corral/node"
)

var quiet = slog.New(slog.DiscardHandler)

// jsServer starts an embedded server with JetStream on a random port.
func event(id int, buf []byte, done func(error)) node.Report {
	return node.Report{Kind: node.KindEvent, ProcessID: "proc_a", Name: "enc", Event: "progress",
		MsgID: "proc_a:" + strconv.Itoa(id), Raw: fmt.Appendf(buf[:0], `{"processId":"proc_a","name":"enc","n":%d}`, id), Done: done}
}

func TestEnsureStreamIsIdempotent(t *testing.T) {
	srv := testnode.StartServer(t, true)
	js, err := jetstream.New(testnode.Connect(t, srv.ClientURL()))
	if err != nil {
		t.Fatal(err)
	}
	ctx := testnode.Context(t)
	cfg := relay.StreamConfig{MaxAge: time.Hour, MaxBytes: 1 << 20}
	for range 2 {
		st, err := relay.EnsureStream(ctx, js, cfg)
		if err != nil {
			t.Fatal(err)
		}
		c := st.CachedInfo().Config
		if c.Name != bus.StreamName || !slices.Equal(c.Subjects, bus.HistorySubjects()) || c.Storage != jetstream.FileStorage ||
			c.MaxAge != time.Hour || c.MaxBytes != 1<<20 || c.Duplicates != bus.DuplicateWindow || c.Replicas != 1 {
			t.Errorf("stream config = %+v", c)
		}
	}
	// A changed limit updates the stream; a short age shortens the
	// de-duplication window with it.
	st, err := relay.EnsureStream(ctx, js, relay.StreamConfig{MaxAge: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if c := st.CachedInfo().Config; c.MaxAge != time.Minute || c.Duplicates != time.Minute || c.MaxBytes != -1 {
		t.Errorf("updated config = %+v", c)
	}
	names := js.StreamNames(ctx)
	n := 0
	for range names.Name() {
		n++
	}
	if n != 1 {
		t.Errorf("%d streams, want 1", n)
	}
}

func TestEnsureStreamWithoutJetStream(t *testing.T) {
	srv, err := embedded.Start(embedded.Config{Listen: "127.0.0.1:-1", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	nc := testnode.Connect(t, srv.ClientURL())
	js, _ := jetstream.New(nc)
	if _, err := relay.EnsureStream(testnode.Context(t), js, relay.StreamConfig{}); !errors.Is(err, bus.ErrNoJetStream) {
		t.Errorf("EnsureStream without JetStream = %v, want ErrNoJetStream", err)
	}
	// A relay asked for durable events runs without them.
	r := testnode.NewRelay(t, nc, relay.Config{Durable: true, Stream: &relay.StreamConfig{}})
	if err := r.EnsureStream(testnode.Context(t)); !errors.Is(err, bus.ErrNoJetStream) || r.Durable() {
		t.Errorf("relay EnsureStream = %v, Durable %v", err, r.Durable())
	}
	done := make(chan error, 1)
	if err := r.Publish(event(1, nil, func(err error) { done <- err })); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Errorf("non-durable Done = %v", err)
	}
}

// An event with an id is acked (Done) only once it is in the stream; sent
// again with the same id, it is acked and stored once.
func TestDurableEventIsStoredBeforeDone(t *testing.T) {
	srv := testnode.StartServer(t, true)
	nc := testnode.Connect(t, srv.ClientURL())
	r := testnode.NewRelay(t, nc, relay.Config{Durable: true, Stream: &relay.StreamConfig{MaxAge: time.Hour}})
	if r.Durable() {
		t.Error("durable store ready before the stream is set up")
	}
	ctx := testnode.Context(t)
	if err := r.EnsureStream(ctx); err != nil || !r.Durable() {
		t.Fatalf("EnsureStream = %v, Durable %v", err, r.Durable())
	}
	js, _ := jetstream.New(testnode.Connect(t, srv.ClientURL()))
	st, err := js.Stream(ctx, bus.StreamName)
	if err != nil {
		t.Fatal(err)
	}

	const n = 200
	done := make(chan int, n)
	buf := make([]byte, 0, 128)
	for i := range n {
		err := r.Publish(event(i, buf, func(err error) {
			if err != nil {
				t.Errorf("event %d: %v", i, err)
			}
			done <- i
		}))
		if err != nil {
			t.Fatal(err)
		}
		copy(buf[:cap(buf)], "garbage: the supervisor reuses its buffer") // Raw is only valid during Publish
	}
	for want := range n {
		select {
		case i := <-done:
			if i != want {
				t.Fatalf("Done of event %d came before event %d's", i, want)
			}
			m, err := st.GetMsg(ctx, uint64(i+1))
			if err != nil {
				t.Fatalf("event %d acked but not in the stream: %v", i, err)
			}
			if got, wantData := string(m.Data), fmt.Sprintf(`{"processId":"proc_a","name":"enc","n":%d}`, i); got != wantData ||
				m.Header.Get(bus.HeaderMsgID) != "proc_a:"+strconv.Itoa(i) || m.Subject != "process.enc.progress" {
				t.Fatalf("stored %s %s %v, want %s", m.Subject, got, m.Header, wantData)
			}
		case <-ctx.Done():
			t.Fatalf("%d of %d events acked", want, n)
		}
	}

	// A resend after a lost ack: acked, stored once.
	again := make(chan error, 1)
	if err := r.Publish(event(7, nil, func(err error) { again <- err })); err != nil {
		t.Fatal(err)
	}
	if err := <-again; err != nil {
		t.Fatal(err)
	}
	ids := natstest.StoredIDs(t, testnode.Connect(t, srv.ClientURL()))
	if len(ids) != n || ids["proc_a:7"] != 1 {
		t.Errorf("stream holds %d ids (proc_a:7 %d times), want %d once each", len(ids), ids["proc_a:7"], n)
	}
	if r.Dropped() != 0 {
		t.Errorf("Dropped = %d", r.Dropped())
	}
}

// With the stream not capturing the events, nothing is acked; once Buffer
// events of the node wait for storage, the next is refused at once
// (ErrStoreFull) rather than made to wait, so that no child waits for
// another's events; when the stream is fixed, those waiting are stored
// and acked.
func TestDurableStoreFullRefuses(t *testing.T) {
	srv := testnode.StartServer(t, true)
	js, _ := jetstream.New(testnode.Connect(t, srv.ClientURL()))
	ctx := testnode.Context(t)
	cfg := jetstream.StreamConfig{Name: bus.StreamName, Subjects: []string{"process.other.>"}, Duplicates: time.Minute}
	if _, err := js.CreateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	const buffer = 3
	r := testnode.NewRelay(t, testnode.Connect(t, srv.ClientURL()), relay.Config{Durable: true, Buffer: buffer})
	done := make(chan int, 10)
	publish := func(i int) error {
		return r.Publish(event(i, nil, func(err error) {
			if err != nil {
				t.Errorf("event %d: %v", i, err)
			}
			done <- i
		}))
	}
	for i := range buffer {
		if err := publish(i); err != nil {
			t.Fatal(err)
		}
	}
	if err := publish(buffer); !errors.Is(err, relay.ErrStoreFull) {
		t.Fatalf("Publish with %d events waiting for storage returned %v, want ErrStoreFull at once", buffer, err)
	}
	if n := r.StorePending(); n != buffer {
		t.Errorf("StorePending = %d, want %d", n, buffer)
	}

	cfg.Subjects = []string{bus.SubjectAll}
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	acked := map[int]bool{}
	for range buffer {
		select {
		case i := <-done:
			acked[i] = true
		case <-ctx.Done():
			t.Fatalf("%d of %d events acked", len(acked), buffer)
		}
	}
	if ids := natstest.StoredIDs(t, testnode.Connect(t, srv.ClientURL())); len(ids) != buffer {
		t.Errorf("stored %v, want %d events once each", ids, buffer)
	}
	if r.Dropped() != 0 {
		t.Errorf("Dropped = %d", r.Dropped())
	}
}

// waitStatus waits until nc's status is want.
func waitStatus(t *testing.T, nc *nats.Conn, want nats.Status) {
	t.Helper()
	ch := nc.StatusChanged()
	defer nc.RemoveStatusListener(ch)
	deadline := time.After(10 * time.Second)
	for nc.Status() != want {
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("connection status %v, want %v", nc.Status(), want)
		}
	}
}

// While NATS is away and its reconnect buffer is full, reports queue in
// the relay's backlog; a full backlog makes a child's reports wait, never
// the supervisor's; after the restart everything arrives, in order,
// nothing dropped.
func TestBacklogDuringOutage(t *testing.T) {
	ns := natstest.Start(t)
	check := testnode.Connect(t, ns.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	js, _ := jetstream.New(check)
	if _, err := relay.EnsureStream(testnode.Context(t), js, relay.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	nc := testnode.Connect(t, ns.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond), nats.ReconnectBufSize(512))
	const buffer = 4
	r := testnode.NewRelay(t, nc, relay.Config{Buffer: buffer})

	ns.Stop()
	waitStatus(t, nc, nats.RECONNECTING)
	// Children's events: a few fit nats.go's 512-byte buffer, then the
	// backlog takes four, then Publish waits.
	published := make(chan int, 100)
	go func() {
		defer close(published)
		for i := range 100 {
			if err := r.Publish(event(i, nil, nil)); err != nil {
				t.Errorf("event %d: %v", i, err)
				return
			}
			published <- i
		}
	}()
	n := 0
	for stalled := false; !stalled; {
		select {
		case <-published:
			n++
		case <-time.After(500 * time.Millisecond):
			stalled = true
		}
	}
	t.Logf("%d events published before the relay made the child wait", n)
	if n == 0 || n >= 20 {
		t.Fatalf("%d events published while NATS is away, want a few, then a wait", n)
	}
	// The supervisor's reports never wait.
	stopped := node.Report{Kind: node.KindStopped, ProcessID: "proc_b", Name: "enc", Payload: api.Stopped{ProcessID: "proc_b", Name: "enc"}}
	for range buffer {
		if err := r.Publish(stopped); err != nil {
			t.Fatal(err)
		}
	}

	ns.Restart()
	for range published {
		n++
	}
	if n != 100 {
		t.Fatalf("%d events published", n)
	}
	ids := map[string]int{}
	await.Poll(10*time.Second, func() bool {
		ids = natstest.StoredIDs(t, check)
		return len(ids) >= 100+buffer
	})
	for i := range 100 {
		if ids["proc_a:"+strconv.Itoa(i)] != 1 {
			t.Errorf("event %d stored %d times", i, ids["proc_a:"+strconv.Itoa(i)])
		}
	}
	if len(ids) != 100+buffer {
		t.Errorf("%d messages stored, want %d", len(ids), 100+buffer)
	}
	if r.Dropped() != 0 {
		t.Errorf("Dropped = %d", r.Dropped())
	}
}

// Publishing on a closed connection loses the message: counted.
func TestDroppedOnClosedConnection(t *testing.T) {
	srv := testnode.StartServer(t, true)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	r := testnode.NewRelay(t, nc, relay.Config{})
	nc.Close()
	if err := r.Publish(event(1, nil, nil)); !errors.Is(err, nats.ErrConnectionClosed) {
		t.Errorf("Publish on a closed connection = %v", err)
	}
	if r.Dropped() != 1 {
		t.Errorf("Dropped = %d, want 1", r.Dropped())
	}
}

// An attempt that gets no PubAck within AckTimeout is sent again with the
// same Nats-Msg-Id: here a plain subscriber takes the subject (so NATS
// reports no "no responders") until the stream exists.
func TestDurableEventWithoutAnswerIsSentAgain(t *testing.T) {
	srv := testnode.StartServer(t, true)
	ctx := testnode.Context(t)
	seen := make(chan string, 64)
	snc := testnode.Connect(t, srv.ClientURL())
	if _, err := snc.Subscribe(bus.SubjectAll, func(m *nats.Msg) { seen <- m.Header.Get(bus.HeaderMsgID) }); err != nil {
		t.Fatal(err)
	}
	if err := snc.Flush(); err != nil {
		t.Fatal(err)
	}
	nc := testnode.Connect(t, srv.ClientURL())
	r := testnode.NewRelay(t, nc, relay.Config{Durable: true, AckTimeout: 200 * time.Millisecond})
	done := make(chan error, 1)
	if err := r.Publish(event(1, nil, func(err error) { done <- err })); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		select {
		case id := <-seen:
			if id != "proc_a:1" {
				t.Fatalf("attempt with Nats-Msg-Id %q", id)
			}
		case err := <-done:
			t.Fatalf("Done(%v) without a stream", err)
		case <-ctx.Done():
			t.Fatal("the event was not sent again")
		}
	}
	js, _ := jetstream.New(nc)
	if _, err := relay.EnsureStream(ctx, js, relay.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatal("not acked once the stream exists")
	}
	if ids := natstest.StoredIDs(t, nc); len(ids) != 1 || ids["proc_a:1"] != 1 {
		t.Errorf("stored %v, want proc_a:1 once", ids)
	}
}

// A durable event that cannot be stored before StoreTimeout is refused:
// Done gets the error, so the child knows.
func TestDurableEventGivenUp(t *testing.T) {
	srv := testnode.StartServer(t, true)
	r := testnode.NewRelay(t, testnode.Connect(t, srv.ClientURL()), relay.Config{Durable: true, StoreTimeout: 300 * time.Millisecond})
	done := make(chan error, 1)
	if err := r.Publish(event(1, nil, func(err error) { done <- err })); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "cannot store event proc_a:1") {
			t.Errorf("Done(%v), want a refusal", err)
		}
	case <-testnode.Context(t).Done():
		t.Fatal("Done never called")
	}
	if r.Dropped() != 0 {
		t.Errorf("Dropped = %d: a refusal is not a silent drop", r.Dropped())
	}
}
