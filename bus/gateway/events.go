package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/corral-run/corral/bus"
	"github.com/corral-run/corral/bus/control"
)

// Events as server-sent events. What the event stream CORRAL_EVENTS keeps
// comes from the stream (hub.go: one ordered consumer for every client,
// and the history for a client that resumes): each event carries its
// stream sequence as its SSE id, and a client that reconnects with
// Last-Event-ID resumes right after it, without gap or duplicate (unless
// the stream's limits let go of what it missed). Subjects the stream does
// not keep are followed live (one core subscription for every client):
// their events have no id and a client that was away misses them.
// Without JetStream everything is live.

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
	live := f.liveItems()
	for {
		select {
		case it := <-f.stored:
			sw.event(it.seq, it.subject, it.data)
			drain(sw, f.stored, live)
		case it := <-live:
			sw.event(it.seq, it.subject, it.data)
			drain(sw, f.stored, live)
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
		if d := f.dropped(); d != dropped {
			sw.comment(fmt.Sprintf("dropped %d live events: this client reads too slowly", d-dropped))
			dropped = d
		}
		if err := sw.flush(); err != nil {
			return nil // the client is gone
		}
	}
}

// drain adds to sw what else waits, up to flushEvery events, so that they
// go in one write.
func drain(sw *sseWriter, stored, live <-chan feedItem) {
	for n := 1; n < flushEvery; n++ {
		select {
		case it := <-stored:
			sw.event(it.seq, it.subject, it.data)
		case it := <-live:
			sw.event(it.seq, it.subject, it.data)
		default:
			return
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

// feed is the events of one stream, from the hubs and the history.
type feed struct {
	stored chan feedItem // from followStored, in stream order
	live   *hubClient    // nil when every subject is stored
	errs   chan error
	ready  chan struct{} // closed once the stream misses nothing from now on
	notes  []string      // said to the client first, as comments
	wg     sync.WaitGroup
}

func (f *feed) wait() { f.wg.Wait() }

// liveItems is the live client's queue, or nil.
func (f *feed) liveItems() chan feedItem {
	if f.live == nil {
		return nil
	}
	return f.live.queue
}

// dropped counts the live events lost so far.
func (f *feed) dropped() uint64 {
	if f.live == nil {
		return 0
	}
	return f.live.dropped.Load()
}

// startFeed starts the sources of a stream; they stop when ctx ends.
func (g *Gateway) startFeed(ctx context.Context, filters []string, from eventsFrom) *feed {
	f := &feed{stored: make(chan feedItem, feedQueue), errs: make(chan error, 2), ready: make(chan struct{})}
	state, err := g.ctl.HistoryState(ctx)
	if err != nil && (from.afterSeq > 0 || !from.since.IsZero()) {
		f.notes = append(f.notes, "no event history ("+err.Error()+"): live events only, nothing replayed")
	}
	stored := state.Subjects
	// The filters the stream keeps something of come from the stored hub
	// (and the history); those it does not keep wholly come live too, for
	// what it does not keep. Within its subjects it does not keep
	// process.<name>.stats (bus.HistorySubjects).
	var history, live []string
	for _, flt := range filters {
		within, overlaps := false, false
		for _, p := range stored {
			within = within || bus.FilterWithin(flt, p)
			overlaps = overlaps || bus.SubjectsOverlap(flt, p)
		}
		if overlaps && !bus.IsLiveOnly(flt) {
			history = append(history, flt)
		}
		if !within || bus.SubjectsOverlap(flt, bus.SubjectProcessStats) {
			live = append(live, flt)
		}
	}
	pending := 0
	var mu sync.Mutex
	subscribed := func() {
		mu.Lock()
		defer mu.Unlock()
		if pending--; pending == 0 {
			close(f.ready)
		}
	}
	if len(history) > 0 {
		pending++
	}
	if len(live) > 0 {
		pending++
	}
	if pending == 0 {
		close(f.ready)
	}
	if len(live) > 0 {
		notStored := func(subject string) bool { // the live hub sends what the stored one does not
			if bus.IsLiveOnly(subject) {
				return true
			}
			for _, p := range stored {
				if bus.SubjectMatches(p, subject) {
					return false
				}
			}
			return true
		}
		c := g.newHubClient(live, notStored)
		if _, err := g.live.join(ctx, c); err != nil {
			f.fail(ctx, err)
		} else {
			f.live = c
			subscribed()
			f.wg.Go(func() {
				defer g.live.leave(c)
				select {
				case err := <-c.failed:
					f.fail(ctx, err)
				case <-ctx.Done():
				}
			})
		}
	}
	if len(history) > 0 {
		f.wg.Go(func() {
			f.fail(ctx, g.followStored(ctx, history, from, state.LastSeq, f.stored, subscribed))
		})
	}
	return f
}

// fail reports err to the writer, unless the stream is over anyway.
func (f *feed) fail(ctx context.Context, err error) {
	if err != nil && ctx.Err() == nil {
		f.errs <- err
	}
}

// followStored sends the stored events of filters to out, in stream
// order, each once: first what the history holds from where the client
// starts (after its last event, or since a time; nothing for a client
// that starts now), then what the stored hub dispatches. It joins the hub
// before it reads the history, so nothing falls between the two, and
// skips what it sent already. A client that falls behind the hub (its
// queue overflowed) catches up from the history and joins again. It
// returns when ctx ends, or the error that ended it.
func (g *Gateway) followStored(ctx context.Context, filters []string, from eventsFrom, lastSeq uint64, out chan<- feedItem, subscribed func()) error {
	last, since := from.afterSeq, from.since
	if last > lastSeq {
		last = lastSeq // the stream was made again since the client's last event
	}
	replay := last > 0 || !since.IsZero()
	if !replay {
		last = lastSeq // a client that starts now: what the stream holds is past
	}
	send := func(it feedItem) bool {
		if it.seq <= last {
			return true // sent already
		}
		select {
		case out <- it:
			last = it.seq
			return true
		case <-ctx.Done():
			return false
		}
	}
	first := true
	for {
		c := g.newHubClient(filters, nil)
		if _, err := g.stored.join(ctx, c); err != nil {
			return err
		}
		if first {
			subscribed()
			first = false
		}
		if replay {
			opts := control.HistoryOptions{Subjects: filters, AfterSeq: last, BufferBytes: historyBuffer}
			if last == 0 {
				opts.Since = since
			}
			err := g.ctl.History(ctx, opts, func(e control.Event) { send(feedItem{seq: e.Seq, subject: e.Subject, data: e.Data}) })
			if err != nil || ctx.Err() != nil {
				g.stored.leave(c)
				return err
			}
		}
		replay = true // from now on, a catch-up replays after last
	drain:
		for {
			select {
			case it := <-c.queue:
				if !send(it) {
					g.stored.leave(c)
					return nil
				}
			case err := <-c.failed:
				return err
			case <-ctx.Done():
				g.stored.leave(c)
				return nil
			}
			if c.lagged.Load() && len(c.queue) == 0 {
				break drain // caught up with what was queued: the rest from the history
			}
		}
		g.stored.leave(c)
	}
}
