package service

import (
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/corral-run/corral/bus"
	"github.com/corral-run/corral/internal/await"
)

// A process's requests are served in order, one at a time; a process whose
// requests are slow to serve holds up no other; its queue is bounded; and
// a process with no request waiting has no goroutine.
func TestProcessQueues(t *testing.T) {
	var mu sync.Mutex
	served := map[string][]string{}
	release := make(chan struct{})
	blocked := make(chan struct{}, 1)
	q := newProcQueues(func(id string, m *nats.Msg) {
		if id == "slow" {
			select {
			case blocked <- struct{}{}:
			default:
			}
			<-release
		}
		mu.Lock()
		served[id] = append(served[id], string(m.Data))
		mu.Unlock()
	}, slog.New(slog.DiscardHandler))
	go q.run()
	defer q.close()
	send := func(id string, i int) {
		q.in <- &nats.Msg{Subject: bus.ProcSubject(id, "get"), Data: fmt.Appendf(nil, "%d", i)}
	}
	count := func(id string) int {
		mu.Lock()
		defer mu.Unlock()
		return len(served[id])
	}

	baseline := runtime.NumGoroutine()
	// The slow process: one request being served, then more than its queue
	// holds.
	send("slow", 0)
	<-blocked
	for i := 1; i <= procPendingMsgs+10; i++ {
		send("slow", i)
	}
	// Meanwhile another process is served, in order.
	for i := range 100 {
		send("quick", i)
	}
	await.Until(t, 10*time.Second, "the quick process's requests", func() bool { return count("quick") == 100 })
	mu.Lock()
	quick := slices.Clone(served["quick"])
	mu.Unlock()
	want := make([]string, 100)
	for i := range want {
		want[i] = fmt.Sprint(i)
	}
	if !slices.Equal(quick, want) {
		t.Fatalf("the quick process, while the slow one's requests wait: served %v, want 0 to 99 in order", quick)
	}
	// The slow one, released: its first request and a full queue, in
	// order; the rest were dropped.
	close(release)
	q.wg.Wait()
	mu.Lock()
	slow := served["slow"]
	mu.Unlock()
	if len(slow) != 1+procPendingMsgs || slow[0] != "0" || slow[len(slow)-1] != fmt.Sprint(procPendingMsgs) {
		t.Errorf("the slow process: served %d requests (first %s, last %s), want %d, 0 to %d", len(slow), slow[0], slow[len(slow)-1], 1+procPendingMsgs, procPendingMsgs)
	}
	q.mu.Lock()
	left := len(q.queues)
	q.mu.Unlock()
	if left != 0 {
		t.Errorf("%d queues kept once every request was served", left)
	}
	await.Until(t, 10*time.Second, "no more goroutines than before the requests", func() bool { return runtime.NumGoroutine() <= baseline })
	// Subjects that are not a process's are ignored.
	q.in <- &nats.Msg{Subject: "corral.proc.x"}
	send("again", 1)
	await.Until(t, 10*time.Second, "a request after a malformed subject", func() bool { return count("again") == 1 })
}

// Once the node stops, the requests still queued are dropped (their
// senders time out); the one being answered is answered.
func TestProcessQueuesDropWhatIsLeftOnStop(t *testing.T) {
	var served atomic.Int32
	release := make(chan struct{})
	started := make(chan struct{})
	q := newProcQueues(func(string, *nats.Msg) {
		if served.Add(1) == 1 {
			close(started)
			<-release
		}
	}, slog.New(slog.DiscardHandler))
	go q.run()
	for range 5 {
		q.in <- &nats.Msg{Subject: bus.ProcSubject("p", "get")}
	}
	<-started
	await.Until(t, 10*time.Second, "the requests queued", func() bool {
		q.mu.Lock()
		defer q.mu.Unlock()
		return q.queues["p"] != nil && len(q.queues["p"].msgs) == 4
	})
	close(q.stop)
	<-q.stopped
	close(release)
	q.wg.Wait()
	if n := served.Load(); n != 1 {
		t.Errorf("%d requests answered after the stop, want 1 (the one in flight)", n)
	}
}
