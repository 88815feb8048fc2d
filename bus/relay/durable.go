package relay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/corral-run/corral/bus"
	"github.com/corral-run/corral/node"
)

// A durable event is published to JetStream with a reply subject of its
// own, <inbox>.<token>; one subscription on <inbox>.* receives every
// PubAck, and one goroutine, the collector, calls each event's done once
// it is stored: as soon as it is, whatever the events published before it
// are waiting for, so one event the stream does not answer holds up no
// other (and no other child). An attempt that fails (no stream, an error
// from the stream), that gets no answer within AckTimeout, or that was
// sent on a connection since lost is sent again with the same
// Nats-Msg-Id, which the stream de-duplicates, until the event's deadline.
//
// Lifecycle messages (the supervisor's own reports that the history
// keeps, and process.node_lost) take the same path without a done: the
// supervisor never waits for them, and they are sent again until stored,
// however long the stream takes, as long as the stream can still tell a
// resend from a new message (its duplicate window, from the first attempt
// that may have been stored).
//
// This is what jetstream.PublishMsgAsync does (it too sends again on "no
// responders", after a wait), without a timer and two channels per
// message: on a loaded node the bookkeeping per event is what the relay
// adds to JetStream's own work.

// storedEvent is a durable event on its way into the stream. It is
// reused (storedEvents) once settled: its header and data buffer with it.
type storedEvent struct {
	out      outMsg    // the message of a report; its data is data
	m        *nats.Msg // what is sent: &out.msg, or a lifecycle message of its own
	data     []byte    // the event's own copy of the payload
	done     func(error)
	deadline time.Time // give up on storing it after this (zero: see lifecycle)
	// lifecycle: a supervisor's report (done is nil). Its deadline is set
	// by the first attempt that may have been stored: a StoreTimeout
	// after it, the stream could no longer tell a resend from a new one.
	lifecycle bool

	// Guarded by acker.mu.
	token  uint64    // reply token of the attempt in flight; 0 when none
	sentAt time.Time // when the attempt was sent
	epoch  uint64    // the link epoch it was sent in
	state  storeState
	err    error // the last attempt's error
}

type storeState uint8

const (
	storePending  storeState = iota // an attempt waits for its PubAck
	storeRetry                      // the attempt failed: send it again
	storeDone                       // stored (or handed to NATS once JetStream went away)
	storeFailed                     // given up: done gets err
	storeFinished                   // done was called: it waits to leave the window
)

// acker matches the PubAcks to the events waiting for them.
type acker struct {
	inbox   string          // "<inbox>.", the prefix of every reply subject
	replies *counterStrings // <inbox>.<token>, the token in base 36
	sub     *nats.Subscription

	mu      sync.Mutex
	waiting map[uint64]*storedEvent // by reply token
	retries int                     // events in storeRetry
	settled []*storedEvent          // stored or given up, for the collector to finish
	wake    chan struct{}           // cap 1: an answer came, or the link changed
}

// settle marks e stored (err nil) or given up, unless it is settled
// already, and hands it to the collector; a.mu is held.
func (a *acker) settle(e *storedEvent, err error) {
	if e.state >= storeDone {
		return
	}
	a.detach(e)
	e.state, e.err = storeDone, err
	if err != nil {
		e.state = storeFailed
	}
	a.settled = append(a.settled, e)
}

// intake hands new durable events to the collector without ever making
// the publisher wait for it (the collector may be backing off, or waiting
// for the connection): a slice swapped under a short lock, bounded by the
// relay's counts of events waiting for storage.
type intake struct {
	mu     sync.Mutex
	events []*storedEvent
	closed bool
	wake   chan struct{} // cap 1
}

// add queues e for the collector.
func (in *intake) add(e *storedEvent) {
	in.mu.Lock()
	first := len(in.events) == 0
	in.events = append(in.events, e)
	in.mu.Unlock()
	if first {
		poke(in.wake)
	}
}

// take swaps out what is queued (reusing spare) and reports whether more
// may come.
func (in *intake) take(spare []*storedEvent) ([]*storedEvent, bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	out := in.events
	in.events = spare[:0]
	return out, !in.closed
}

func (in *intake) close() {
	in.mu.Lock()
	in.closed = true
	in.mu.Unlock()
	poke(in.wake)
}

func poke(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// errNoAck is the error of an attempt that got no PubAck in time.
var errNoAck = errors.New("no PubAck")

var storedEvents = sync.Pool{New: func() any {
	e := &storedEvent{}
	e.out.init()
	return e
}}

// maxPooledData is the largest payload buffer a settled event keeps for
// the next one.
const maxPooledData = 16 << 10

// newStoredEvent returns a durable event for rep, with its own copy of
// data.
func (r *Relay) newStoredEvent(subject string, rep *node.Report, msgID string, data []byte) *storedEvent {
	e := storedEvents.Get().(*storedEvent)
	e.data = append(e.data[:0], data...)
	e.out.set(r.cfg.NodeID, subject, rep, msgID, e.data)
	e.m = &e.out.msg
	e.done, e.deadline = rep.Done, time.Now().Add(r.cfg.StoreTimeout)
	return e
}

// free returns a settled event (one no attempt of which is awaited) to
// the pool.
func (e *storedEvent) free() {
	e.out.clear()
	if cap(e.data) > maxPooledData {
		e.data = nil
	}
	e.done, e.err, e.token, e.state, e.m, e.lifecycle, e.deadline = nil, nil, 0, storePending, nil, false, time.Time{}
	storedEvents.Put(e)
}

// subject is the event's subject.
func (e *storedEvent) subject() string { return e.m.Subject }

// id is the event's Nats-Msg-Id.
func (e *storedEvent) id() string {
	if v := e.m.Header[bus.HeaderMsgID]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// listen subscribes to the PubAcks.
func (r *Relay) listen() error {
	a := &r.acks
	a.inbox = r.nc.NewInbox() + "."
	a.replies = &counterStrings{prefix: a.inbox, width: replyTokenLen}
	sub, err := r.nc.Subscribe(a.inbox+"*", r.onAck)
	if err != nil {
		return fmt.Errorf("cannot subscribe to PubAcks: %w", err)
	}
	_ = sub.SetPendingLimits(-1, -1) // bounded by Buffer
	a.sub = sub
	return nil
}

// replyTokenLen is the width of reply tokens (base 36): they wrap after
// 36^10 attempts.
const replyTokenLen = 10

// publishDurable publishes a child's durable event to JetStream and hands
// it to the collector, which calls done once it is stored. It never waits
// for storage: the node paces each child by the events of its own that
// wait (node.Config.EventWindow). Past Buffer events waiting for storage
// on the whole node it refuses the event at once (ErrStoreFull), so that
// no child waits for another's. It waits only while NATS is away and its
// reconnect buffer is full, as core messages do.
func (r *Relay) publishDurable(e *storedEvent) error {
	if r.unstored.Add(1) > int64(r.cfg.Buffer) {
		r.unstored.Add(-1)
		err := fmt.Errorf("cannot store event on %s: %w", e.subject(), ErrStoreFull)
		e.free()
		if n := r.refused.Add(1); n <= 10 || n%1000 == 0 {
			r.log.Warn("event refused: too many events of this node wait for storage", "max", r.cfg.Buffer, "refused", n)
		}
		return err
	}
	if err := r.send(r.waitCtx, e); err != nil {
		r.unstored.Add(-1)
		if errors.Is(err, nats.ErrConnectionClosed) {
			r.drop(e.subject(), err)
		}
		e.free()
		return err
	}
	r.intake.add(e)
	return nil
}

// storeLifecycle sends a lifecycle message to JetStream and hands it to the
// collector, which sends it again until it is stored. It never waits: what
// NATS cannot take now is sent again by the collector.
func (r *Relay) storeLifecycle(e *storedEvent) {
	e.lifecycle, e.deadline = true, time.Time{}
	a := &r.acks
	m := *e.m
	m.Reply = a.attempt(e, r.link.epoch())
	if err := r.nc.PublishMsg(&m); err != nil {
		a.mu.Lock()
		a.detach(e)
		e.state, e.err = storeRetry, err
		a.retries++
		a.mu.Unlock()
	}
	r.intake.add(e)
}

// attempt registers a new attempt of e, sent in epoch, and returns its
// reply subject.
func (a *acker) attempt(e *storedEvent, epoch uint64) string {
	reply, token := a.replies.get()
	a.mu.Lock()
	a.detach(e) // a late answer to the last attempt is ignored
	e.token, e.sentAt, e.epoch, e.state = token, time.Now(), epoch, storePending
	a.waiting[token] = e
	a.mu.Unlock()
	return reply
}

// send publishes an attempt of e. While NATS is away and its reconnect
// buffer is full, it waits for the connection until ctx ends.
func (r *Relay) send(ctx context.Context, e *storedEvent) error {
	a := &r.acks
	for {
		m := *e.m
		m.Reply = a.attempt(e, r.link.epoch())
		err := r.nc.PublishMsg(&m)
		if err == nil {
			return nil
		}
		a.forget(e)
		if !errors.Is(err, nats.ErrReconnectBufExceeded) {
			return fmt.Errorf("cannot publish on %s: %w", e.subject(), err)
		}
		if !r.link.wait(ctx) {
			if ctx.Err() != nil {
				return fmt.Errorf("cannot publish on %s: %w", e.subject(), ErrClosed)
			}
			return fmt.Errorf("cannot publish on %s: %w", e.subject(), nats.ErrConnectionClosed)
		}
	}
}

// forget stops waiting for e's attempt in flight.
func (a *acker) forget(e *storedEvent) {
	a.mu.Lock()
	a.detach(e)
	a.mu.Unlock()
}

// detach stops waiting for e's attempt in flight, if any, and takes it
// out of the retry count; a.mu is held.
func (a *acker) detach(e *storedEvent) {
	if e.token != 0 {
		delete(a.waiting, e.token)
		e.token = 0
	}
	if e.state == storeRetry {
		a.retries--
		e.state = storePending
	}
}

func (a *acker) poke() { poke(a.wake) }

// onAck receives one PubAck (or a no-responders status).
func (r *Relay) onAck(m *nats.Msg) {
	a := &r.acks
	token, err := strconv.ParseUint(m.Subject[len(a.inbox):], 36, 64)
	if err != nil {
		return
	}
	failure := pubAckError(m)
	a.mu.Lock()
	e := a.waiting[token]
	if e == nil {
		a.mu.Unlock()
		return // the answer to an attempt sent again since
	}
	delete(a.waiting, token)
	e.token = 0
	if failure == nil {
		a.settle(e, nil)
	} else {
		e.state, e.err = storeRetry, failure
		a.retries++
	}
	a.mu.Unlock()
	a.poke()
}

var pubAckPrefix = []byte(`{"stream":"`)

// pubAckError says why a PubAck is not a confirmed store; nil when it is
// (a duplicate counts as stored).
func pubAckError(m *nats.Msg) error {
	if bytes.HasPrefix(m.Data, pubAckPrefix) && !bytes.Contains(m.Data, []byte(`"error"`)) {
		return nil // the common case, without decoding
	}
	if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
		return jetstream.ErrNoStreamResponse // no stream captures the subject
	}
	var pa struct {
		Stream string              `json:"stream"`
		Error  *jetstream.APIError `json:"error"`
	}
	switch err := json.Unmarshal(m.Data, &pa); {
	case err != nil:
		return fmt.Errorf("%w: %v", jetstream.ErrInvalidJSAck, err)
	case pa.Error != nil:
		return pa.Error
	case pa.Stream == "":
		return jetstream.ErrInvalidJSAck
	}
	return nil
}

// collect is the one goroutine that settles durable events: done(nil) as
// soon as one is stored, done(err) once given up, and it sends again what
// must be. Its window keeps the events in publish order, for the
// timeouts; settled ones leave it from its head, or when they are most of
// it.
func (r *Relay) collect() {
	defer r.work.Done()
	a := &r.acks
	var window, batch, settled []*storedEvent // window in publish order
	more := true
	epoch := r.link.epoch()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var armed *storedEvent // the head the timer is set for
	var armedAt time.Time
	for {
		if r.ctx.Err() != nil {
			r.abort(window)
			return
		}
		var in []*storedEvent
		in, more = r.intake.take(batch)
		window = append(window, in...)
		clear(in)
		batch = in

		a.mu.Lock()
		settled, a.settled = a.settled, settled[:0]
		a.mu.Unlock()
		r.finish(settled)
		clear(settled)

		window = r.shed(window)
		a.mu.Lock()
		retries := a.retries
		var head *storedEvent
		var headSent time.Time
		if len(window) > 0 && window[0].state == storePending {
			head, headSent = window[0], window[0].sentAt
		}
		a.mu.Unlock()

		now := r.link.epoch()
		overdue := head != nil && time.Since(headSent) >= r.cfg.AckTimeout
		switch {
		case len(window) > 0 && (retries > 0 || now != epoch || overdue):
			r.retry(window, retries > 0)
			epoch = now
			continue
		case len(window) == 0 && !more:
			return
		}
		// The timer follows the head's attempt, re-armed only when that
		// changes (not once per event).
		if head != armed || headSent != armedAt {
			armed, armedAt = head, headSent
			timer.Stop()
			if head != nil {
				timer.Reset(r.cfg.AckTimeout - time.Since(headSent))
			}
		}
		select {
		case <-r.intake.wake:
		case <-a.wake:
		case <-timer.C:
			armed = nil
		case <-r.ctx.Done():
		}
	}
}

// abort gives up on every event waiting for storage: Close gave up.
func (r *Relay) abort(window []*storedEvent) {
	a := &r.acks
	in, _ := r.intake.take(nil)
	window = append(window, in...)
	a.mu.Lock()
	for _, e := range window {
		a.settle(e, ErrClosed)
	}
	settled := a.settled
	a.settled = nil
	a.mu.Unlock()
	r.finish(settled)
}

// shed takes the finished events out of the window (from its head, and
// all of them once they are most of it) and lets them be reused.
func (r *Relay) shed(window []*storedEvent) []*storedEvent {
	a := &r.acks
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for n < len(window) && window[n].state == storeFinished {
		window[n].free()
		window[n] = nil
		n++
	}
	window = window[n:]
	waiting := int(r.unstored.Load() + r.lifecycle.Load())
	if len(window) <= 64 || len(window) <= 2*waiting {
		return window
	}
	kept := make([]*storedEvent, 0, 2*waiting+64)
	for _, e := range window {
		if e.state == storeFinished {
			e.free()
		} else {
			kept = append(kept, e)
		}
	}
	return kept
}

// retry sends again, once the connection is up, every event of the window
// whose attempt failed, got no answer in time or went out on a connection
// since lost. A failure rarely comes alone (a disconnect loses every
// pending PubAck at once, a missing stream fails every event), so they go
// in one pass, in order. refused says the server answered with a failure:
// back off before asking again.
func (r *Relay) retry(window []*storedEvent, refused bool) {
	a := &r.acks
	if refused {
		r.retryWait = min(max(2*r.retryWait, 100*time.Millisecond), 2*time.Second)
		t := time.NewTimer(r.retryWait)
		select {
		case <-t.C:
		case <-r.ctx.Done():
			t.Stop()
			return
		}
		select {
		case r.ensureNow <- struct{}{}: // the stream may be gone: have it checked
		default:
		}
	} else {
		r.retryWait = 0
	}
	var deadline time.Time // the earliest of the window's, for the wait for the connection
	a.mu.Lock()
	for _, e := range window {
		if !e.deadline.IsZero() && e.state < storeDone && (deadline.IsZero() || e.deadline.Before(deadline)) {
			deadline = e.deadline
		}
	}
	a.mu.Unlock()
	if limit := time.Now().Add(r.cfg.AckTimeout); deadline.IsZero() || limit.Before(deadline) {
		// A window of lifecycle messages alone has no deadline: the wait
		// is bounded anyway, so that the collector comes back for the
		// events that arrived meanwhile (and their deadlines).
		deadline = limit
	}
	ctx, cancel := context.WithDeadline(r.ctx, deadline)
	up := r.link.wait(ctx)
	cancel()
	if !up {
		if r.ctx.Err() != nil {
			return // Close gave up: collect fails what is left
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		now := time.Now()
		for _, e := range window {
			switch {
			case !r.link.isClosed() && !e.deadline.IsZero() && now.After(e.deadline):
				a.settle(e, context.DeadlineExceeded)
			case r.link.isClosed():
				a.settle(e, nats.ErrConnectionClosed) // the connection is closed for good
			}
		}
		return
	}
	now, epoch := time.Now(), r.link.epoch()
	var again []*storedEvent
	var reason error
	a.mu.Lock()
	for _, e := range window {
		switch {
		case e.state == storeRetry:
		case e.state == storePending && e.epoch != epoch:
			e.err = nats.ErrDisconnected
		case e.state == storePending && now.Sub(e.sentAt) >= r.cfg.AckTimeout:
			e.err = errNoAck
		default:
			continue
		}
		if e.lifecycle && e.deadline.IsZero() && e.state == storePending {
			// This attempt may have been stored: from now on the
			// stream can tell a resend from a new message for
			// StoreTimeout only.
			e.deadline = e.sentAt.Add(r.cfg.StoreTimeout)
		}
		if !e.deadline.IsZero() && now.After(e.deadline) {
			a.settle(e, e.err)
			continue
		}
		if reason == nil {
			reason = e.err
		}
		again = append(again, e)
	}
	a.mu.Unlock()
	if len(again) > 0 && now.Sub(r.retryLogged) >= retryLogEvery {
		r.retryLogged = now
		r.log.Info("sending again events not confirmed stored", "events", len(again), "reason", reason,
			"waiting", r.unstored.Load(), "lifecycle", r.lifecycle.Load())
	}
	for _, e := range again {
		if !r.durable.Load() {
			// The server turned out to have no JetStream: the event is
			// handed to NATS as a plain message, as in non-durable mode.
			a.forget(e)
			err := r.publish(e.m, false, false)
			a.mu.Lock()
			a.settle(e, err)
			a.mu.Unlock()
			continue
		}
		if err := r.send(r.ctx, e); err != nil {
			a.mu.Lock()
			a.settle(e, err)
			a.mu.Unlock()
		}
	}
}

// retryLogEvery is how often a store that keeps failing is logged.
const retryLogEvery = 10 * time.Second

// finish calls the done of settled events (a lifecycle message that could
// not be stored is logged and counted as dropped), and marks them
// finished: they leave the window (shed) and are reused.
func (r *Relay) finish(settled []*storedEvent) {
	if len(settled) == 0 {
		return
	}
	for _, e := range settled {
		if e.lifecycle {
			r.lifecycle.Add(-1)
			if e.state == storeFailed {
				r.drop(e.subject(), fmt.Errorf("lifecycle message %s not stored: %w", e.id(), e.err))
			}
			continue
		}
		r.unstored.Add(-1)
		if e.state == storeFailed {
			e.done(fmt.Errorf("cannot store event %s: %w", e.id(), e.err))
		} else {
			e.done(nil)
		}
	}
	r.acks.mu.Lock()
	for _, e := range settled {
		e.state = storeFinished
	}
	r.acks.mu.Unlock()
}

// EnsureStream sets up Config.Stream (see the package function
// EnsureStream), and the stats bucket with it (Config.StatsStore). When
// the server has no JetStream, durable acks are off (what waits for
// storage is then handed to NATS as plain messages); once the stream is
// there again, they are back on (when Config.Durable).
// The node calls it at start; the relay calls it again each time the
// connection comes back. Without Config.Stream it does nothing.
func (r *Relay) EnsureStream(ctx context.Context) error {
	if r.cfg.Stream == nil {
		return nil
	}
	st, err := EnsureStream(ctx, r.js, *r.cfg.Stream)
	switch {
	case err == nil:
		if r.cfg.Durable && !r.durable.Swap(true) {
			r.log.Info("durable events on: a child's ack waits until JetStream stored the event", "stream", bus.StreamName)
		}
		r.ready.Store(r.cfg.Durable)
		if r.cfg.StatsStore {
			// Without it the history is whole: said, and tried again
			// with the stream.
			if err := r.ensureStatsBucket(ctx, st); err != nil {
				r.log.Warn("the latest stats are not kept", "bucket", bus.StatsBucket, "err", err)
			}
		}
	case errors.Is(err, bus.ErrNoJetStream):
		r.ready.Store(false)
		if r.durable.Swap(false) {
			r.log.Warn("durable events off: the NATS server has no JetStream; acks mean handed to NATS", "stream", bus.StreamName)
		}
	}
	return err
}

// EnsureStreamInBackground has the relay set up Config.Stream in
// the background and returns at once: the relay keeps trying, as it does
// after a reconnection, until the stream is there, the server turns out
// to have no JetStream, the connection goes away (its return starts
// again) or the relay is closed. Durable acks start once the stream is
// there. The node calls it when waiting would hold up its start: a
// JetStream cluster elects its leader only once its members are up, and a
// replicated stream needs as many servers as copies.
func (r *Relay) EnsureStreamInBackground() {
	select {
	case r.ensureNow <- struct{}{}:
	default:
	}
}

// Bounds of the stream keeper's retries.
const (
	ensureAttempt  = 10 * time.Second // one attempt, waiting for JetStream included
	ensureRetryMax = 5 * time.Second  // the longest pause between attempts
	ensureReport   = 30 * time.Second // how often a failure that lasts is logged again
)

// keepStream ensures the stream each time the connection comes back, a
// durable event found no stream, or EnsureStreamInBackground asks,
// retrying with backoff until the stream is there.
func (r *Relay) keepStream() {
	defer r.bg.Done()
	for {
		select {
		case <-r.ensureNow:
		case <-r.ctx.Done():
			return
		}
		if r.cfg.Stream == nil {
			continue
		}
		start, reported := time.Now(), time.Time{}
		wait := 250 * time.Millisecond
		for attempt := 1; ; attempt++ {
			ctx, cancel := context.WithTimeout(r.ctx, ensureAttempt)
			err := r.EnsureStream(ctx)
			cancel()
			if r.ctx.Err() != nil {
				return
			}
			if err == nil {
				if attempt > 1 {
					r.log.Info("event stream set up", "stream", bus.StreamName, "attempts", attempt,
						"after", time.Since(start).Round(time.Millisecond))
				}
				break
			}
			if errors.Is(err, bus.ErrNoJetStream) || !r.link.connected() {
				r.log.Warn("cannot set up the event stream", "stream", bus.StreamName, "err", err)
				break
			}
			if time.Since(reported) >= ensureReport {
				reported = time.Now()
				r.log.Warn("cannot set up the event stream yet; retrying (a JetStream cluster needs its members up, and a replicated stream as many servers as copies)",
					"stream", bus.StreamName, "attempts", attempt, "waited", time.Since(start).Round(time.Second), "err", err)
			}
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-r.ctx.Done():
				t.Stop()
				return
			}
			wait = min(2*wait, ensureRetryMax)
		}
	}
}
