package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/corral-run/corral/bus"
	"github.com/corral-run/corral/bus/control"
)

// Events as server-sent events. What the event stream CORRAL_EVENTS keeps
// is read through an ordered consumer (control.History): each event
// carries its stream sequence as its SSE id, and a client that reconnects
// with Last-Event-ID resumes right after it, without gap or duplicate
// (unless the stream's limits let go of what it missed). Subjects the
// stream does not keep are followed live (control.Events): their events
// have no id and a client that was away misses them. Without JetStream
// everything is live.

// maxFilters bounds the subject filters of one stream.
const maxFilters = 8

// Buffers of one stream.
const (
	// feedQueue is how many events wait for the writer. Stored events
	// wait for room (the consumer simply lags); live ones beyond it are
	// dropped and counted.
	feedQueue = 256
	// historyBuffer bounds what the consumer fetches ahead.
	historyBuffer = 1 << 20
	// livePending bounds what a live subscription holds.
	livePendingMsgs, livePendingBytes = 1024, 8 << 20
	// flushEvery is the most events written before a flush.
	flushEvery = 256
	// readyWait bounds the wait for the subscriptions before the answer
	// starts anyway.
	readyWait = 10 * time.Second
)

// feedItem is one event for the writer.
type feedItem struct {
	seq     uint64 // stream sequence; 0 for a live event
	subject string
	data    []byte
}

// eventsFrom says where a stream starts.
type eventsFrom struct {
	afterSeq uint64    // Last-Event-ID: resume after it
	since    time.Time // replay from then
}

func (g *Gateway) events(w http.ResponseWriter, r *http.Request) error {
	q, err := queryMulti(r, []string{"subject"}, "subject", "since")
	if err != nil {
		return err
	}
	filters, err := eventFilters(q["subject"])
	if err != nil {
		return err
	}
	var from eventsFrom
	if s := q.Get("since"); s != "" {
		if from.since, err = parseSince(s, time.Now()); err != nil {
			return err
		}
	}
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		if from.afterSeq, err = strconv.ParseUint(strings.TrimSpace(id), 10, 64); err != nil {
			return errorf(http.StatusBadRequest, "Last-Event-ID %q is not an event id (a stream sequence, a number)", id)
		}
	}
	release, err := g.acquireStream()
	if err != nil {
		return err
	}
	defer release()

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	f := g.startFeed(ctx, filters, from)
	defer f.wait() // after cancel: no goroutine outlives the request
	defer cancel()
	// The answer starts once the subscriptions are in place: a client
	// that sees the stream open (EventSource's open) misses nothing
	// published from then on.
	var early error
	ready := false
	select {
	case <-f.ready:
		ready = true
	case early = <-f.errs:
	case <-time.After(readyWait):
	case <-ctx.Done():
		return nil
	}
	sw := startSSE(w)
	for _, note := range f.notes {
		sw.comment(note)
	}
	switch {
	case ready:
		sw.comment("listening on " + strings.Join(filters, " "))
	case early != nil:
		f.errs <- early // said below, as an event
	}
	if err := sw.flush(); err != nil {
		return nil
	}
	tick := time.NewTicker(keepAlive)
	defer tick.Stop()
	var dropped uint64
	for {
		select {
		case it := <-f.items:
			sw.event(it.seq, it.subject, it.data)
		more: // what else is there goes in the same write
			for n := 1; n < flushEvery; n++ {
				select {
				case it := <-f.items:
					sw.event(it.seq, it.subject, it.data)
				default:
					break more
				}
			}
		case err := <-f.errs:
			data, _ := json.Marshal(ErrorBody{Error: err.Error(), Code: statusOf(err)})
			sw.event(0, "error", data)
			_ = sw.flush()
			return nil // the client reconnects, and resumes
		case <-tick.C:
			sw.comment("keep-alive")
		case <-ctx.Done():
			return nil
		}
		if d := f.dropped.Load(); d != dropped {
			sw.comment(fmt.Sprintf("dropped %d live events: this client reads too slowly", d-dropped))
			dropped = d
		}
		if err := sw.flush(); err != nil {
			return nil // the client is gone
		}
	}
}

// eventFilters checks the subject filters of a stream: process.> when
// none, at most maxFilters, each within process.>, none overlapping
// another.
func eventFilters(given []string) ([]string, error) {
	if len(given) == 0 {
		return []string{bus.SubjectAll}, nil
	}
	if len(given) > maxFilters {
		return nil, errorf(http.StatusBadRequest, "%d subjects: give at most %d", len(given), maxFilters)
	}
	for i, f := range given {
		if err := bus.CheckEventFilter(f); err != nil {
			return nil, errorf(http.StatusBadRequest, "cannot follow events: %v", err)
		}
		for _, other := range given[:i] {
			if bus.SubjectsOverlap(f, other) {
				return nil, errorf(http.StatusBadRequest, "cannot follow events: subjects %q and %q overlap (give subjects no event matches twice)", other, f)
			}
		}
	}
	return given, nil
}

// maxSince bounds how far back since may go: the stream keeps at most
// its limits anyway.
const maxSince = 365 * 24 * time.Hour

// parseSince reads since: a positive duration before now ("10m"), or a
// time (RFC 3339).
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d <= 0 || d > maxSince {
			return time.Time{}, errorf(http.StatusBadRequest, "since=%q is out of range (expected a positive duration up to a year, e.g. 10m)", s)
		}
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, errorf(http.StatusBadRequest, "since=%q is neither a duration (10m) nor a time (2026-12-06T17:20:00Z)", s)
	}
	return t, nil
}

// acquireStream takes one of the MaxStreams slots, or says there is none.
func (g *Gateway) acquireStream() (func(), error) {
	if n := g.streams.Add(1); n > int64(g.cfg.MaxStreams) {
		g.streams.Add(-1)
		return nil, errorf(http.StatusServiceUnavailable, "cannot follow: this gateway serves %d streams already, its limit", g.cfg.MaxStreams)
	}
	var once sync.Once
	return func() { once.Do(func() { g.streams.Add(-1) }) }, nil
}

// feed is the events of one stream, from the history and live.
type feed struct {
	items   chan feedItem
	errs    chan error
	ready   chan struct{} // closed once every source is in place
	notes   []string      // said to the client first, as comments
	dropped atomic.Uint64 // live events the queue had no room for
	wg      sync.WaitGroup
}

func (f *feed) wait() { f.wg.Wait() }

// startFeed starts the sources of a stream; they stop when ctx ends.
func (g *Gateway) startFeed(ctx context.Context, filters []string, from eventsFrom) *feed {
	f := &feed{items: make(chan feedItem, feedQueue), errs: make(chan error, maxFilters+1), ready: make(chan struct{})}
	stored, err := g.ctl.HistorySubjects(ctx)
	if err != nil {
		stored = nil
		if from.afterSeq > 0 || !from.since.IsZero() {
			f.notes = append(f.notes, "no event history ("+err.Error()+"): live events only, nothing replayed")
		}
	}
	// The filters the stream keeps something of go to the consumer; those
	// it does not keep wholly are followed live too, for what it does not
	// keep.
	var history, live []string
	for _, flt := range filters {
		within, overlaps := false, false
		for _, p := range stored {
			within = within || bus.FilterWithin(flt, p)
			overlaps = overlaps || bus.SubjectsOverlap(flt, p)
		}
		if overlaps {
			history = append(history, flt)
		}
		if !within {
			live = append(live, flt)
		}
	}
	isStored := func(subject string) bool {
		for _, p := range stored {
			if bus.SubjectMatches(p, subject) {
				return true
			}
		}
		return false
	}
	var pending atomic.Int32
	pending.Store(int32(len(live)))
	if len(history) > 0 {
		pending.Add(1)
	}
	subscribed := func() {
		if pending.Add(-1) == 0 {
			close(f.ready)
		}
	}
	if pending.Load() == 0 {
		close(f.ready)
	}
	fail := func(err error) {
		if err != nil && ctx.Err() == nil {
			f.errs <- err
		}
	}
	if len(history) > 0 {
		opts := control.HistoryOptions{Subjects: history, Follow: true, BufferBytes: historyBuffer}
		switch {
		case from.afterSeq > 0:
			opts.AfterSeq = from.afterSeq
		case !from.since.IsZero():
			opts.Since = from.since
		default:
			opts.New = true
		}
		f.wg.Go(func() {
			fail(g.ctl.History(ctx, opts, func(e control.Event) {
				select {
				case f.items <- feedItem{seq: e.Seq, subject: e.Subject, data: e.Data}:
				case <-ctx.Done():
				}
			}, control.OnSubscribed(subscribed)))
		})
	}
	for _, flt := range live {
		f.wg.Go(func() {
			fail(g.ctl.Events(ctx, flt, func(e control.Event) {
				if isStored(e.Subject) {
					return // it comes from the history, with its id
				}
				select {
				case f.items <- feedItem{subject: e.Subject, data: e.Data}:
				default:
					f.dropped.Add(1)
				}
			}, control.OnSubscribed(subscribed), control.PendingLimits(livePendingMsgs, livePendingBytes)))
		})
	}
	return f
}
