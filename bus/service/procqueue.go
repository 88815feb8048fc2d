package service

import (
	"log/slog"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/corral-run/corral/bus"
)

// Requests for a process (corral.proc.<id>.*) are served one at a time and
// in order, and never wait behind another process's. A subscription with a
// handler has a goroutine of its own in nats.go, which a node with 1,000
// idle processes would keep 1,000 of. So every process's subscription
// delivers into one channel (ChanSubscribe, no goroutine), one goroutine
// sorts what arrives into per-process queues, and a process's queue is
// served by a goroutine that runs only while it holds requests. A process
// with a full queue (procPendingMsgs or procPendingBytes) loses the new
// requests (their senders time out), as a subscription past its pending
// limits would.
type procQueues struct {
	in      chan *nats.Msg
	serve   func(id string, m *nats.Msg)
	log     *slog.Logger
	stop    chan struct{} // closed by close: run returns
	stopped chan struct{} // closed once run has returned

	mu     sync.Mutex
	queues map[string]*procQueue // only those with requests, or being served
	wg     sync.WaitGroup        // the serving goroutines
}

// procQueue is one process's requests, oldest first.
type procQueue struct {
	msgs  []*nats.Msg
	bytes int
	full  bool // requests were dropped since the queue last emptied (logged once)
}

// procInbox bounds what the subscriptions hand over before the sorting
// goroutine takes it; beyond it nats.go drops (a slow consumer).
const procInbox = 4096

func newProcQueues(serve func(id string, m *nats.Msg), log *slog.Logger) *procQueues {
	return &procQueues{in: make(chan *nats.Msg, procInbox), serve: serve, log: log, stop: make(chan struct{}),
		stopped: make(chan struct{}), queues: map[string]*procQueue{}}
}

// run sorts requests into their process's queue until close.
func (q *procQueues) run() {
	defer close(q.stopped)
	for {
		select {
		case m := <-q.in:
			q.add(m)
		case <-q.stop:
			return
		}
	}
}

// close stops run and waits for the requests being answered; the others
// are dropped (see drain).
func (q *procQueues) close() {
	close(q.stop)
	<-q.stopped
	q.wg.Wait()
}

func (q *procQueues) add(m *nats.Msg) {
	id, ok := bus.ProcOf(m.Subject)
	if !ok {
		return // not one of ours: the subscriptions are corral.proc.<id>.*
	}
	q.mu.Lock()
	pq := q.queues[id]
	if pq == nil {
		pq = &procQueue{}
		q.queues[id] = pq
		q.wg.Go(func() { q.drain(id, pq) })
	}
	if len(pq.msgs) < procPendingMsgs && pq.bytes+len(m.Data) <= procPendingBytes {
		pq.msgs = append(pq.msgs, m)
		pq.bytes += len(m.Data)
		q.mu.Unlock()
		return
	}
	first, waiting := !pq.full, len(pq.msgs)
	pq.full = true
	q.mu.Unlock()
	if first { // logged outside the lock
		q.log.Warn("requests for a process arrive faster than the node answers them; the new ones are dropped (their senders time out)",
			"process", id, "waiting", waiting)
	}
}

// drain serves id's queue until it is empty, then forgets it. Once the
// node stops (run has returned), what is left is dropped, as a
// subscription's pending messages are when it ends: the senders time out.
func (q *procQueues) drain(id string, pq *procQueue) {
	for {
		q.mu.Lock()
		select {
		case <-q.stopped:
			pq.msgs, pq.bytes = nil, 0
		default:
		}
		if len(pq.msgs) == 0 {
			delete(q.queues, id)
			q.mu.Unlock()
			return
		}
		m := pq.msgs[0]
		pq.msgs[0] = nil
		pq.msgs = pq.msgs[1:]
		pq.bytes -= len(m.Data)
		q.mu.Unlock()
		q.serve(id, m)
	}
}
