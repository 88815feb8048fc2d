package gateway

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/corral-run/corral/bus"
	"github.com/corral-run/corral/bus/control"
)

// A hub is one subscription that every event stream of the gateway
// shares, so that a hundred browsers following process.> cost one
// subscription, not a hundred: the stored hub reads the event stream from
// now on (an ordered consumer: each event with its stream sequence), the
// live hub follows process.> with a core subscription for the subjects
// the stream does not keep. A hub starts with its first client, and stops
// when its last client leaves (so that nobody listens to the heartbeats
// and stats the nodes then need not send), with the gateway, or when its
// subscription fails (its clients are told; the next client starts it
// again).
//
// A hub never waits for a client: each has a bounded queue. A stored
// client that falls behind is marked lagged and gets nothing more from the
// hub; it catches up from the history and joins again (see followStored),
// so it loses nothing. A live client that falls behind loses the events
// its queue had no room for, counted.
type hub struct {
	g      *Gateway
	stored bool

	mu      sync.Mutex
	clients map[*hubClient]struct{}
	joining int // clients between join's start and their admission
	running bool
	run     uint64             // counts the runs: a run that ended leaves a newer one alone
	stop    context.CancelFunc // ends the current run
	ready   chan struct{}      // closed once the subscription is in place
	failed  error              // why the last run ended
	lastSeq uint64             // the last stored event dispatched
}

// hubClient is one stream's place in a hub.
type hubClient struct {
	filters []string
	accept  func(subject string) bool // besides the filters; nil: all
	queue   chan feedItem
	lagged  atomic.Bool   // stored: the queue overflowed, events were skipped
	dropped atomic.Uint64 // live: events the queue had no room for
	failed  chan error    // the hub's subscription ended (cap 1)
}

func (g *Gateway) newHubClient(filters []string, accept func(string) bool) *hubClient {
	return &hubClient{filters: filters, accept: accept, queue: make(chan feedItem, g.cfg.StreamQueue), failed: make(chan error, 1)}
}

// join adds c to the hub, starting the hub's subscription if it does not
// run, and returns once the subscription is in place: c gets every event
// dispatched from then on. It also returns the last stored event the hub
// dispatched before (0 when none yet).
func (h *hub) join(ctx context.Context, c *hubClient) (uint64, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.clients == nil {
		h.clients = map[*hubClient]struct{}{}
	}
	h.joining++
	seq, err := h.admit(ctx, c)
	h.joining--
	if err != nil {
		h.stopIfIdle()
	}
	return seq, err
}

// admit waits until a run is subscribed, starting one if none runs, and
// adds c to it. h.mu is held, and released while it waits. Should the run
// it waited for end meanwhile and another start, it waits for that one:
// c is never admitted to a run that is not subscribed yet.
func (h *hub) admit(ctx context.Context, c *hubClient) (uint64, error) {
	for first := true; ; first = false {
		if !h.running {
			if !first { // the run it waited for ended, and none runs
				return 0, h.failed
			}
			h.start()
		}
		ready, run := h.ready, h.run
		h.mu.Unlock()
		var err error
		select {
		case <-ready:
		case <-ctx.Done():
			err = ctx.Err()
		}
		h.mu.Lock()
		if err != nil {
			return 0, err
		}
		if h.running && h.run == run {
			h.clients[c] = struct{}{}
			return h.lastSeq, nil
		}
	}
}

// leave removes c, and stops the hub if c was its last client.
func (h *hub) leave(c *hubClient) {
	h.mu.Lock()
	delete(h.clients, c)
	h.stopIfIdle()
	h.mu.Unlock()
}

// stopIfIdle ends the current run when nobody is in the hub or joining
// it; h.mu is held.
func (h *hub) stopIfIdle() {
	if h.running && len(h.clients) == 0 && h.joining == 0 {
		h.running, h.failed = false, errors.New("the hub has no client")
		h.stop()
	}
}

// start runs the hub's subscription until the gateway closes or the
// subscription fails; h.mu is held.
func (h *hub) start() {
	ready := make(chan struct{})
	h.ready = ready
	g := h.g
	if g.ctx.Err() != nil { // closed: no new goroutine
		h.failed = errors.New("the gateway is closing")
		close(ready)
		return
	}
	h.running, h.failed = true, nil
	h.run++
	run := h.run
	ctx, stop := context.WithCancel(g.ctx)
	h.stop = stop
	var once sync.Once
	subscribed := func() { once.Do(func() { close(ready) }) }
	dispatch := func(e control.Event) { h.dispatch(run, e) }
	g.bg.Go(func() {
		defer stop()
		var err error
		if h.stored {
			err = g.ctl.History(ctx, control.HistoryOptions{Follow: true, New: true, BufferBytes: historyBuffer},
				dispatch, control.OnSubscribed(subscribed))
		} else {
			err = g.ctl.Events(ctx, bus.SubjectAll, dispatch, control.OnSubscribed(subscribed),
				control.PendingLimits(livePendingMsgs, livePendingBytes))
		}
		if err == nil {
			err = errors.New("the gateway is closing")
		}
		h.mu.Lock()
		if h.run == run && h.running { // not stopped for want of clients, nor followed by a newer run
			h.running, h.failed = false, err
			for c := range h.clients {
				c.failed <- err
			}
			clear(h.clients)
		}
		h.mu.Unlock()
		subscribed() // a join still waiting sees it failed
	})
}

// dispatch hands an event of run to every client whose filters match it;
// a run that was stopped delivers nothing more.
func (h *hub) dispatch(run uint64, e control.Event) {
	it := feedItem{seq: e.Seq, subject: e.Subject, data: e.Data}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.run != run || !h.running {
		return
	}
	if e.Seq > 0 {
		h.lastSeq = e.Seq
	}
	for c := range h.clients {
		if !c.wants(e.Subject) || h.stored && c.lagged.Load() {
			continue
		}
		select {
		case c.queue <- it:
		default:
			if h.stored {
				c.lagged.Store(true)
			} else {
				c.dropped.Add(1)
			}
		}
	}
}

func (c *hubClient) wants(subject string) bool {
	if c.accept != nil && !c.accept(subject) {
		return false
	}
	for _, f := range c.filters {
		if bus.SubjectMatches(f, subject) {
			return true
		}
	}
	return false
}
