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
// PubAck, and one goroutine, the collector, calls the events' done in
// publish order. An attempt that fails (no stream, an error from the
// stream), that gets no answer within AckTimeout, or that was sent on
// a connection since lost is sent again with the same Nats-Msg-Id, which
// the stream de-duplicates, until the event's deadline.
//
// This is what jetstream.PublishMsgAsync does, without a timer and two
// channels per message: on a loaded node the bookkeeping per event is
// what the relay adds to JetStream's own work.

// storedEvent is a durable event on its way into the stream. It is
// reused (storedEvents) once settled: its header and data buffer with it.
type storedEvent struct {
	out      outMsg // the message; its data is data
	data     []byte // the event's own copy of the payload
	done     func(error)
	deadline time.Time // give up on storing it after this

	// Guarded by acker.mu.
	token  uint64    // reply token of the attempt in flight; 0 when none
	sentAt time.Time // when the attempt was sent
	epoch  uint64    // the link epoch it was sent in
	state  storeState
	err    error // the last attempt's error
}

type storeState uint8

const (
	storePending storeState = iota // an attempt waits for its PubAck
	storeRetry                     // the attempt failed: send it again
	storeDone                      // stored (or handed to NATS once JetStream went away)
	storeFailed                    // given up: done gets err
)

// acker matches the PubAcks to the events waiting for them.
type acker struct {
	inbox   string          // "<inbox>.", the prefix of every reply subject
	replies *counterStrings // <inbox>.<token>, the token in base 36
	sub     *nats.Subscription

	mu      sync.Mutex
	waiting map[uint64]*storedEvent // by reply token
	retries int                     // events in storeRetry
	wake    chan struct{}           // cap 1: an answer came, or the link changed
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
func (r *Relay) newStoredEvent(subject string, rep *node.Report, data []byte) *storedEvent {
	e := storedEvents.Get().(*storedEvent)
	e.data = append(e.data[:0], data...)
	e.out.set(r.cfg.NodeID, subject, rep, rep.MsgID, e.data)
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
	e.done, e.err, e.token, e.state = nil, nil, 0, storePending
	storedEvents.Put(e)
}

// subject is the event's subject.
func (e *storedEvent) subject() string { return e.out.msg.Subject }

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

// publishDurable publishes a durable event to JetStream and hands it to the
// collector, which calls done once it is stored. It waits for a slot while
// Buffer events wait for storage: back-pressure to the child.
func (r *Relay) publishDurable(e *storedEvent) error {
	select {
	case r.slots <- struct{}{}:
	default:
		select {
		case r.slots <- struct{}{}:
		case <-r.waitCtx.Done():
			err := fmt.Errorf("cannot store event on %s: %w", e.subject(), ErrClosed)
			e.free()
			return err
		}
	}
	if err := r.send(r.waitCtx, e); err != nil {
		<-r.slots
		if errors.Is(err, nats.ErrConnectionClosed) {
			r.drop(e.subject(), err)
		}
		e.free()
		return err
	}
	select {
	case r.storing <- e:
		return nil
	case <-r.waitCtx.Done():
		// Published but never to be acked: the child resends it, and the
		// stream de-duplicates.
		r.acks.forget(e)
		<-r.slots
		err := fmt.Errorf("cannot store event on %s: %w", e.subject(), ErrClosed)
		e.free()
		return err
	}
}

// send publishes an attempt of e. While NATS is away and its reconnect
// buffer is full, it waits for the connection until ctx ends.
func (r *Relay) send(ctx context.Context, e *storedEvent) error {
	a := &r.acks
	for {
		reply, token := a.replies.get()
		a.mu.Lock()
		a.detach(e) // a late answer to the last attempt is ignored
		e.token, e.sentAt, e.epoch, e.state = token, time.Now(), r.link.epoch(), storePending
		a.waiting[token] = e
		a.mu.Unlock()
		m := e.out.msg
		m.Reply = reply
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

func (a *acker) poke() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

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
		e.state = storeDone
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

// collect is the one goroutine that settles durable events in publish
// order: done(nil) once stored, done(err) once given up, and it sends
// again what must be.
func (r *Relay) collect() {
	defer r.work.Done()
	a := &r.acks
	var window, settled []*storedEvent // window in publish order
	in := r.storing
	epoch := r.link.epoch()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var armed *storedEvent // the head the timer is set for
	var armedAt time.Time
	for {
		a.mu.Lock()
		n := 0
		for n < len(window) && window[n].state >= storeDone {
			n++
		}
		settled = append(settled[:0], window[:n]...)
		clear(window[:n])
		window = window[n:]
		retries := a.retries
		var head *storedEvent
		var headSent time.Time
		if len(window) > 0 && window[0].state == storePending {
			head, headSent = window[0], window[0].sentAt
		}
		a.mu.Unlock()
		for _, e := range settled {
			r.finish(e)
		}
		clear(settled)

		now := r.link.epoch()
		overdue := head != nil && time.Since(headSent) >= r.cfg.AckTimeout
		switch {
		case len(window) > 0 && (retries > 0 || now != epoch || overdue):
			r.retry(window, retries > 0)
			epoch = now
			continue
		case len(window) == 0 && in == nil:
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
		case e, ok := <-in:
			if !ok {
				in = nil
				continue
			}
			window = append(window, e)
		case <-a.wake:
		case <-timer.C:
			armed = nil
		case <-r.ctx.Done():
			for _, e := range window {
				a.forget(e)
				e.state, e.err = storeFailed, ErrClosed
				r.finish(e)
			}
			if in != nil {
				for e := range in {
					a.forget(e)
					e.state, e.err = storeFailed, ErrClosed
					r.finish(e)
				}
			}
			return
		}
	}
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
	head := window[0]
	ctx, cancel := context.WithDeadline(r.ctx, head.deadline)
	up := r.link.wait(ctx)
	cancel()
	if !up {
		if r.ctx.Err() != nil {
			return // Close gave up: collect fails what is left
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		if time.Now().After(head.deadline) {
			r.fail(head, context.DeadlineExceeded)
			return
		}
		for _, e := range window { // the connection is closed for good
			r.fail(e, nats.ErrConnectionClosed)
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
		if now.After(e.deadline) {
			r.fail(e, e.err)
			continue
		}
		if reason == nil {
			reason = e.err
		}
		again = append(again, e)
	}
	a.mu.Unlock()
	if len(again) > 0 {
		r.log.Info("sending again events not confirmed stored", "events", len(again), "reason", reason)
	}
	for _, e := range again {
		if !r.durable.Load() {
			// The server turned out to have no JetStream: the event is
			// handed to NATS as a plain message, as in non-durable mode.
			a.forget(e)
			err := r.publish(&e.out.msg, false, false)
			a.mu.Lock()
			e.state, e.err = storeDone, err
			if err != nil {
				e.state = storeFailed
			}
			a.mu.Unlock()
			continue
		}
		if err := r.send(r.ctx, e); err != nil {
			a.mu.Lock()
			e.state, e.err = storeFailed, err
			a.mu.Unlock()
		}
	}
}

// fail gives up on e unless it is settled already; a.mu is held.
func (r *Relay) fail(e *storedEvent, err error) {
	if e.state >= storeDone {
		return
	}
	r.acks.detach(e)
	if err == nil {
		err = errNoAck
	}
	e.state, e.err = storeFailed, err
}

// finish calls an event's done, frees its slot and lets it be reused.
func (r *Relay) finish(e *storedEvent) {
	<-r.slots
	if e.state == storeFailed {
		e.done(fmt.Errorf("cannot store event %s: %w", e.out.vals[3], e.err))
	} else {
		e.done(nil)
	}
	e.free()
}

// EnsureStream sets up Config.Stream (see the package function
// EnsureStream), and the stats bucket with it (Config.StatsStore). Once
// the stream is there, durable acks are on (when Config.Durable); when the
// server has no JetStream, they are off.
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
		if r.cfg.StatsStore {
			// Without it the history is whole: said, and tried again
			// with the stream.
			if err := r.ensureStatsBucket(ctx, st); err != nil {
				r.log.Warn("the latest stats are not kept", "bucket", bus.StatsBucket, "err", err)
			}
		}
	case errors.Is(err, bus.ErrNoJetStream):
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
