package daemon_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus"
	"github.com/corral-run/corral/bus/relay"
	"github.com/corral-run/corral/bus/service"
	"github.com/corral-run/corral/internal/await"
	"github.com/corral-run/corral/internal/natstest"
	"github.com/corral-run/corral/internal/testchild"
	"github.com/corral-run/corral/internal/testnode"
	"github.com/corral-run/corral/node"
)

// published counts what appears on process.>: by subject, and by
// Nats-Msg-Id (every attempt to store an event is published).
type published struct {
	mu        sync.Mutex
	bySubject map[string]int
	byID      map[string]int
	of        map[string][]string // subject → process ids
}

func watchPublished(t *testing.T, url string) *published {
	t.Helper()
	p := &published{bySubject: map[string]int{}, byID: map[string]int{}, of: map[string][]string{}}
	nc := testnode.Connect(t, url)
	if _, err := nc.Subscribe(bus.SubjectAll, func(m *nats.Msg) {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.bySubject[m.Subject]++
		p.byID[m.Header.Get(bus.HeaderMsgID)]++
		p.of[m.Subject] = append(p.of[m.Subject], m.Header.Get(bus.HeaderProcessID))
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *published) subject(s string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.bySubject[s]
}

func (p *published) id(id string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.byID[id]
}

func (p *published) processesOn(s string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.of[s]...)
}

// A slow store never kills a child. The store does not answer: the event
// stream captures none of the events, and a subscriber takes their
// subjects, so every attempt to store one goes unanswered, as while a
// stream has no leader. A child that emits durable events and sends
// heartbeats keeps running through many heartbeat timeouts: once its own
// window of events waiting for storage is full, the node reads no more of
// it, and the watchdog does not hold against it the heartbeats the node
// left unread. Another child on the same node keeps relaying meanwhile,
// its heartbeats read: once the node's bound of events waiting for storage
// is full, its durable events are refused at once rather than held. Once
// the stream can store, every event of the first child is stored once and
// acked.
func TestSlowStoreKillsNoChild(t *testing.T) {
	const (
		window    = 4
		events    = 10
		timeout   = 300 * time.Millisecond // heartbeat timeout: killed at twice it
		beat      = 50 * time.Millisecond
		ackWait   = 200 * time.Millisecond
		resendsOf = 10 // attempts of the first event to wait for: about 2 s, over 6 heartbeat timeouts
	)
	srv := testnode.StartServer(t, true)
	ctx := testnode.Context(t)
	fixStream := testnode.StalledStream(t, srv.ClientURL())
	seen := watchPublished(t, srv.ClientURL())

	ctrl := testchild.NewCtrl(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	worker := node.Definition{Name: "worker", Command: exe, Env: ctrl.Env(), HeartbeatTimeout: timeout, StopTimeout: time.Second}
	n := testnode.Start(t, srv, testnode.Spec{ID: "n1", EventWindow: window, Definitions: []node.Definition{worker},
		Service: service.Config{Relay: relay.Config{Durable: true, AckTimeout: ackWait, Buffer: window + 1}}})

	spawn := func() (api.ManagedProcess, *testchild.Peer) {
		t.Helper()
		mp, err := n.Sup.Spawn(ctx, "worker", node.SpawnOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return mp, ctrl.Accept()
	}
	line := func(id, typ, rest string) string {
		return fmt.Sprintf(`{"type":%q,"processId":%q,"timestamp":1%s}`, typ, id, rest) + "\n"
	}
	stop := make(chan struct{})
	var writers sync.WaitGroup
	writeErrs := make(chan error, 2)
	// every writes first, then what each tick makes, every beat until the
	// test ends.
	every := func(p *testchild.Peer, first string, tick func() string) {
		writers.Go(func() {
			if _, err := p.Write([]byte(first)); err != nil {
				writeErrs <- err
				return
			}
			tk := time.NewTicker(beat)
			defer tk.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tk.C:
					if _, err := p.Write([]byte(tick())); err != nil {
						writeErrs <- err
						return
					}
				}
			}
		})
	}
	defer writers.Wait()
	defer close(stop)

	// A: connected, ten durable events at once, then heartbeats.
	a, peerA := spawn()
	first := line(a.ID, "connected", "")
	for i := 1; i <= events; i++ {
		first += line(a.ID, "event", fmt.Sprintf(`,"event":"tick","data":{"seq":%d},"id":%d`, i, i))
	}
	every(peerA, first, func() string { return line(a.ID, "heartbeat", "") })
	// B: connected, then a heartbeat, an event without id and a durable
	// event every beat. Its first durable event fills the node's bound
	// (Buffer) of events waiting for storage.
	b, peerB := spawn()
	k := 0
	every(peerB, line(b.ID, "connected", ""), func() string {
		k++
		return line(b.ID, "heartbeat", "") + line(b.ID, "event", `,"event":"progress","data":{}`) +
			line(b.ID, "event", fmt.Sprintf(`,"event":"tick","data":{"seq":%d},"id":%d`, k, k))
	})

	// The node sends A's first event again and again, for more than six
	// heartbeat timeouts; B's events are relayed all along.
	await.Until(t, 20*time.Second, fmt.Sprintf("A's first event sent %d times", resendsOf), func() bool {
		return seen.id(a.ID+":1") >= resendsOf
	})
	if got := seen.subject("process.worker.progress"); got < 10 {
		t.Errorf("B's events relayed %d times while A's waited for storage, want it to keep relaying", got)
	}
	for i := window + 1; i <= events; i++ {
		if k := seen.id(fmt.Sprintf("%s:%d", a.ID, i)); k != 0 {
			t.Errorf("A's event %d published %d times with %d of its events waiting for storage: the node read past its window", i, k, window)
		}
	}
	for _, s := range []string{bus.SubjectWatchdogKilled, bus.SubjectStale, bus.SubjectCrashed} {
		if ids := seen.processesOn(s); len(ids) > 0 {
			t.Errorf("%s for %v", s, ids)
		}
	}
	for _, mp := range []api.ManagedProcess{a, b} {
		got, ok := n.Sup.Get(mp.ID)
		if !ok || got.Status != api.StatusRunning || got.Stale {
			t.Errorf("%s is %+v, want running and not stale", mp.ID, got)
		}
	}
	if got, _ := n.Sup.Get(b.ID); got.LastHeartbeat == nil || time.Since(*got.LastHeartbeat) > timeout {
		t.Errorf("B's last heartbeat %v: its heartbeats are not read while A's events wait", got.LastHeartbeat)
	}
	if answer := peerB.ReadLine(); !strings.Contains(answer, `"type":"error"`) || !strings.Contains(answer, "wait for storage") {
		t.Errorf("B's second durable event answered %s, want a refusal: too many events wait for storage", answer)
	}

	// The stream can store again: every event of A's is stored once and acked.
	fixStream()
	acked := map[int]bool{}
	r := bufio.NewReader(peerA)
	for len(acked) < events {
		s, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("A got %d acks, then %v", len(acked), err)
		}
		var ans struct {
			Type    string `json:"type"`
			ID      int    `json:"id"`
			Message string `json:"message"`
		}
		if err := json.Unmarshal([]byte(s), &ans); err != nil || ans.Type != "ack" {
			t.Fatalf("A got %q, want acks", strings.TrimSpace(s))
		}
		acked[ans.ID] = true
	}
	ids := natstest.StoredIDs(t, testnode.Connect(t, srv.ClientURL()))
	for i := 1; i <= events; i++ {
		if k := ids[fmt.Sprintf("%s:%d", a.ID, i)]; k != 1 {
			t.Errorf("A's event %d stored %d times, want once", i, k)
		}
	}
	select {
	case err := <-writeErrs:
		t.Errorf("a child's writes failed: %v", err)
	default:
	}
}
