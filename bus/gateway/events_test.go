package gateway_test

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus"
	"github.com/corral-run/corral/bus/gateway"
	"github.com/corral-run/corral/internal/await"
	"github.com/corral-run/corral/internal/testnode"
	"github.com/corral-run/corral/node"
)

// publishDemo publishes n events process.demo.tick {"n": from…} on the
// node's connection, as a node relays its children's events, and waits
// until the server has them.
func publishDemo(t *testing.T, s *site, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		if err := s.node.Conn.Publish("process.demo.tick", fmt.Appendf(nil, `{"n":%d}`, i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.node.Conn.Flush(); err != nil {
		t.Fatal(err)
	}
}

// tickN reads n from a demo event.
func tickN(t *testing.T, e sseEvent) int {
	t.Helper()
	var d struct{ N int }
	if e.event != "process.demo.tick" || json.Unmarshal([]byte(e.data), &d) != nil {
		t.Fatalf("not a demo tick: %+v", e)
	}
	return d.N
}

// A stream gives each stored event its stream sequence as its id; a
// client that drops and reconnects with Last-Event-ID gets what it missed,
// without gap and without duplicate, then what follows.
func TestEventsResumeAfterLastEventID(t *testing.T) {
	s := startSite(t, true, gateway.Config{})
	st := s.openStream(t, "/api/v1/events?subject=process.demo.>")
	st.listening(t)
	publishDemo(t, s, 0, 5)
	var last string
	prev := uint64(0)
	for want := range 5 {
		e := st.next(t)
		if n := tickN(t, e); n != want {
			t.Fatalf("event %d has n = %d", want, n)
		}
		seq, err := strconv.ParseUint(e.id, 10, 64)
		if err != nil || seq <= prev {
			t.Fatalf("event %d: id %q after %d", want, e.id, prev)
		}
		prev, last = seq, e.id
	}
	st.close() // the connection drops

	publishDemo(t, s, 5, 5) // missed while away
	if err := s.node.Conn.Publish("process.other.note", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	// What EventSource sends when it reconnects.
	again := s.openStream(t, "/api/v1/events?subject=process.demo.>", "Last-Event-ID", last)
	for want := 5; want < 10; want++ {
		if n := tickN(t, again.next(t)); n != want {
			t.Fatalf("after reconnecting: n = %d, want %d (a gap or a duplicate)", n, want)
		}
	}
	again.listening(t)
	publishDemo(t, s, 10, 1)
	if n := tickN(t, again.next(t)); n != 10 {
		t.Fatalf("then: n = %d, want 10", n)
	}

	// since replays the history first.
	hist := s.openStream(t, "/api/v1/events?subject=process.demo.>&since=10m")
	for want := range 11 {
		if n := tickN(t, hist.next(t)); n != want {
			t.Fatalf("replay: n = %d, want %d", n, want)
		}
	}
}

// Several subjects in one stream: each gets its events, the others none.
func TestEventsOfSeveralSubjects(t *testing.T) {
	s := startSite(t, true, gateway.Config{})
	st := s.openStream(t, "/api/v1/events?subject=process.spawned&subject=process.stopped")
	st.listening(t)
	ctx := testnode.Context(t)
	mp, err := s.node.Ctl.Spawn(ctx, "", "sleeper", api.SpawnRequest{})
	if err != nil {
		t.Fatal(err)
	}
	publishDemo(t, s, 0, 1)
	if _, err := s.node.Ctl.Stop(ctx, mp.ID, ""); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{bus.SubjectSpawned, bus.SubjectStopped} {
		e := st.next(t)
		if e.event != want || !strings.Contains(e.data, mp.ID) || e.id == "" {
			t.Errorf("event %+v, want %s of %s with an id", e, want, mp.ID)
		}
	}
}

// Without JetStream there is no history: events come live, without id,
// and a client that asks to resume is told so.
func TestEventsLiveOnly(t *testing.T) {
	s := startSite(t, false, gateway.Config{})
	st := s.openStream(t, "/api/v1/events?since=1h", "Last-Event-ID", "42")
	st.listening(t)
	if !strings.Contains(strings.Join(st.comments, "\n"), "no event history") {
		t.Errorf("comments %q do not say there is no history", st.comments)
	}
	publishDemo(t, s, 0, 1)
	if e := st.next(t); e.id != "" || tickN(t, e) != 0 {
		t.Errorf("live event %+v", e)
	}
}

// When the stream keeps only some subjects, those come with ids and the
// others live, once each.
func TestEventsStoredAndLive(t *testing.T) {
	srv := testnode.StartServer(t, true)
	n := testnode.Start(t, srv, testnode.Spec{ID: "n1", Definitions: definitions})
	js, _ := jetstream.New(n.Conn)
	ctx := testnode.Context(t)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: bus.StreamName, Subjects: []string{"process.demo.>"}}); err != nil {
		t.Fatal(err)
	}
	s := startGateway(t, n, gateway.Config{})
	st := s.openStream(t, "/api/v1/events")
	st.listening(t)
	publishDemo(t, s, 0, 1)
	if err := n.Conn.Publish("process.other.note", []byte(`{"x":1}`)); err != nil {
		t.Fatal(err)
	}
	publishDemo(t, s, 1, 1)
	got := map[string][]sseEvent{}
	for range 3 {
		e := st.next(t)
		got[e.event] = append(got[e.event], e)
	}
	if ticks := got["process.demo.tick"]; len(ticks) != 2 || ticks[0].id == "" || ticks[1].id == "" {
		t.Errorf("stored events: %+v", ticks)
	}
	if notes := got["process.other.note"]; len(notes) != 1 || notes[0].id != "" || notes[0].data != `{"x":1}` {
		t.Errorf("live events: %+v", notes)
	}
	if e, err := st.read(300 * time.Millisecond); err == nil {
		t.Errorf("an event more: %+v", e)
	}
}

// Heartbeats and stats are not in the history: a stream of everything gets
// them live (without an id), once each, next to the stored events; the
// per-process stats too, though the history's subjects take them in.
func TestEventsHeartbeatsAndStatsLive(t *testing.T) {
	s := startSite(t, true, gateway.Config{})
	st := s.openStream(t, "/api/v1/events")
	st.listening(t)
	ref := []byte(`{"processId":"proc_a","name":"demo"}`)
	for _, rep := range []node.Report{
		{Kind: node.KindHeartbeat, ProcessID: "proc_a", Name: "demo", Raw: ref},
		{Kind: node.KindStats, ProcessID: "proc_a", Name: "demo", Payload: api.StatsReport{ProcessID: "proc_a", Name: "demo", Source: "node"}},
	} {
		if err := s.node.Svc.Publish(rep); err != nil {
			t.Fatal(err)
		}
	}
	publishDemo(t, s, 0, 1)
	got := map[string][]sseEvent{}
	for range 4 {
		e := st.next(t)
		got[e.event] = append(got[e.event], e)
	}
	for _, subject := range []string{bus.SubjectHeartbeat, bus.SubjectStats, "process.demo.stats"} {
		if evs := got[subject]; len(evs) != 1 || evs[0].id != "" {
			t.Errorf("%s: %+v, want it once, live", subject, evs)
		}
	}
	if ticks := got["process.demo.tick"]; len(ticks) != 1 || ticks[0].id == "" {
		t.Errorf("stored events: %+v", ticks)
	}
	if e, err := st.read(300 * time.Millisecond); err == nil {
		t.Errorf("an event more: %+v", e)
	}
}

// The streams a gateway serves at once are bounded.
func TestStreamLimit(t *testing.T) {
	s := startSite(t, false, gateway.Config{MaxStreams: 1})
	st := s.openStream(t, "/api/v1/events")
	st.listening(t)
	var e gateway.ErrorBody
	s.ok(t, 503, "GET", "/api/v1/events", nil, &e)
	if !strings.Contains(e.Error, "serves 1 streams already, its limit") {
		t.Errorf("a second stream: %+v", e)
	}
	if s.gw.Streams() != 1 {
		t.Errorf("Streams = %d", s.gw.Streams())
	}
	st.close()
	await.Until(t, 10*time.Second, "the slot back", func() bool { return s.gw.Streams() == 0 })
	s.openStream(t, "/api/v1/events").listening(t)
}

// A followed log sends the lines as the process writes them, and says
// when it has ended.
func TestLogsFollow(t *testing.T) {
	s := startSite(t, false, gateway.Config{})
	ctx := testnode.Context(t)
	mp, err := s.node.Ctl.Spawn(ctx, "", "printer", api.SpawnRequest{})
	if err != nil {
		t.Fatal(err)
	}
	st := s.openStream(t, "/api/v1/processes/"+mp.ID+"/logs?follow=1")
	var lines []string
	for len(lines) < 3 {
		e := st.next(t)
		if e.event != "log" {
			t.Fatalf("event %+v, want log", e)
		}
		lines = append(lines, strings.Split(e.data, "\n")...)
	}
	if strings.Join(lines, "|") != "line 1|line 2|line 3" {
		t.Errorf("followed lines %q", lines)
	}
	if _, err := s.node.Ctl.Stop(ctx, mp.ID, ""); err != nil {
		t.Fatal(err)
	}
	e := st.next(t)
	var end api.ManagedProcess
	if e.event != "end" || json.Unmarshal([]byte(e.data), &end) != nil || end.ID != mp.ID || !end.Status.Finished() {
		t.Errorf("after the stop: %+v", e)
	}
	if _, err := st.read(time.Second); err == nil {
		t.Error("the stream went on after its end")
	}
}

// A stream that falls behind the shared subscription (its queue of 4
// overflows under a burst) catches up from the history: every event, in
// order, once.
func TestSlowStreamCatchesUp(t *testing.T) {
	s := startSite(t, true, gateway.Config{StreamQueue: 4})
	st := s.openStream(t, "/api/v1/events?subject=process.demo.>")
	st.listening(t)
	const burst = 3000
	publishDemo(t, s, 0, burst)
	for want := range burst {
		if n := tickN(t, st.next(t)); n != want {
			t.Fatalf("event %d has n = %d: a gap or a duplicate", want, n)
		}
	}
	publishDemo(t, s, burst, 1)
	if n := tickN(t, st.next(t)); n != burst {
		t.Fatalf("then n = %d, want %d", n, burst)
	}
}

// A live stream that falls behind loses events, and says how many.
func TestSlowLiveStreamSaysWhatItLost(t *testing.T) {
	s := startSite(t, false, gateway.Config{StreamQueue: 4})
	st := s.openStream(t, "/api/v1/events?subject=process.demo.>")
	st.listening(t)
	publishDemo(t, s, 0, 3000)
	got := 0
	for {
		if _, err := st.read(time.Second); err != nil {
			break
		}
		got++
	}
	said := strings.Join(st.comments, "\n")
	t.Logf("%d of 3000 live events delivered", got)
	if got < 3000 && !strings.Contains(said, "live events: this client reads too slowly") {
		t.Errorf("%d of 3000 events, and no word of the others: %q", got, st.comments)
	}
}

// The gateway listens to process.> only while a stream needs it: once the
// last one has gone, nobody listens to the heartbeats and stats, so the
// nodes need not send them; the next stream listens again.
func TestNobodyListensOnceTheLastStreamHasGone(t *testing.T) {
	srv := testnode.StartServer(t, true)
	n := testnode.Start(t, srv, testnode.Spec{ID: "n1", JetStream: true, Definitions: definitions})
	s := startGateway(t, n, gateway.Config{})
	if srv.Listened(bus.SubjectHeartbeat) {
		t.Fatal("someone listens to heartbeats before any stream")
	}
	for round := range 2 {
		a, b := s.openStream(t, "/api/v1/events"), s.openStream(t, "/api/v1/events?subject=process.heartbeat")
		a.listening(t)
		b.listening(t)
		if !srv.Listened(bus.SubjectHeartbeat) {
			t.Fatalf("round %d: nobody listens to heartbeats while two streams follow them", round)
		}
		// And what is heard reaches the streams, the hub started anew too.
		ref := []byte(`{"processId":"proc_a","name":"demo"}`)
		if err := n.Svc.Publish(node.Report{Kind: node.KindHeartbeat, ProcessID: "proc_a", Name: "demo", Raw: ref}); err != nil {
			t.Fatal(err)
		}
		if e := b.next(t); e.event != bus.SubjectHeartbeat {
			t.Errorf("round %d: stream of heartbeats got %+v", round, e)
		}
		a.close()
		b.close()
		await.Until(t, 5*time.Second, "nobody to listen to heartbeats once both streams have gone", func() bool {
			return !srv.Listened(bus.SubjectHeartbeat)
		})
	}
}
