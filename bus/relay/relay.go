package relay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus"
	"github.com/corral-run/corral/node"
)

// Errors of Relay.Publish. Test with errors.Is.
var (
	// ErrClosed: the relay was closed (or is shutting down) before
	// the report could be handed on.
	ErrClosed = errors.New("relay closed")
	// ErrBacklogFull: NATS has been away so long that the backlog of
	// supervisor reports is full; the report is dropped and counted.
	ErrBacklogFull = errors.New("publish backlog full")
	// ErrStoreFull: Config.Buffer events of the node's children already
	// wait for storage; the event is refused (the child is told), so that
	// no child waits for another's events.
	ErrStoreFull = errors.New("too many events wait for storage")
)

// Defaults of Config.
const (
	DefaultBuffer       = 65536
	DefaultStoreTimeout = bus.DuplicateWindow
	DefaultAckTimeout   = 10 * time.Second
)

// Config configures a Relay.
type Config struct {
	// NodeID goes into every message's Corral-Node header.
	NodeID string
	// Durable makes events that carry an id (Report.MsgID and Report.Done
	// set: a child's line with an "id") wait for JetStream: Done is called
	// once the stream stored the event (a duplicate counts as stored),
	// not when it is handed to NATS. Events are published to JetStream
	// asynchronously and each is acknowledged as soon as it is stored, by
	// one goroutine; a PubAck that fails or times out is retried with the
	// same Nats-Msg-Id until StoreTimeout, then Done gets the error.
	// Lifecycle messages (the supervisor's reports the history keeps, and
	// PublishLifecycle's) are stored the same way, sent again until they
	// are, and never make their publisher wait.
	//
	// Durable acks hold from the start: until the stream is there (a node
	// that starts while its cluster has no stream leader), events wait
	// for it, up to StoreTimeout. They stop only if the server turns out
	// to have no JetStream (EnsureStream). Without Stream, the caller
	// promises that a stream captures process.>.
	Durable bool
	// Stream, when set, is the event stream the relay sets up on
	// EnsureStream and again each time the connection comes back, so a
	// server that lost its state gets the stream back.
	Stream *StreamConfig
	// StatsStore, with Stream, keeps the latest stats of each process in
	// the KV bucket bus.StatsBucket (key: the process id), which the relay
	// sets up with the stream; the key is deleted when the process ends.
	StatsStore bool
	// Buffer bounds what waits for NATS. In durable mode, children's
	// events waiting for storage: past Buffer of them on the node, an
	// event is refused at once (ErrStoreFull) rather than held, since each
	// child is paced by its own events (node.Config.EventWindow); and
	// lifecycle messages waiting for storage: past Buffer of them, one is
	// published live only, and logged. Messages waiting for a
	// reconnection once nats.go's own reconnect buffer is full: past
	// Buffer, Publish blocks for reports from a child (its read loop
	// stalls: back-pressure) while the supervisor's own reports are kept
	// up to twice Buffer before any is dropped. Default DefaultBuffer.
	Buffer int
	// StoreTimeout is how long a durable event may wait for storage
	// before Done gets an error. Default and maximum DuplicateWindow.
	StoreTimeout time.Duration
	// AckTimeout is how long one attempt to store a durable event waits
	// for its PubAck before the event is sent again (the stream
	// de-duplicates). Default DefaultAckTimeout.
	AckTimeout time.Duration
	// Listened, when set, says whether anyone listens on a subject: a
	// live-only message (a heartbeat, stats) that nobody listens to is not
	// sent, since NATS would drop it anyway. Set it only where it knows
	// every listener: the embedded server's view of its account, which
	// takes in the interest of routes and leaf nodes
	// (embedded.Server.Listened). Nil: everything is sent.
	Listened func(subject string) bool
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Relay publishes what the supervisor reports on the subjects of
// DESIGN.md, with the Corral-* and Nats-Msg-Id headers. It implements
// node.Reporter.
//
// Publishing is core NATS (buffered by the connection, no flush per
// message) except for durable events (see Config.Durable). Nothing is
// given up while NATS is away: nats.go buffers what is published while it
// reconnects, the relay keeps what overflows that buffer in a backlog
// bounded by Config.Buffer, and a full backlog makes reports from a
// child wait. What is really lost (publishing on a closed connection, a
// full backlog of supervisor reports) is counted by Dropped and logged.
//
// Create it with New; Close stops its goroutines.
type Relay struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	cfg    Config
	nodeID []string // header value, shared by every message (read-only)
	log    *slog.Logger
	link   *link

	subjects subjectCache
	ids      *counterStrings // message ids

	durable    atomic.Bool // events with an id and lifecycle messages wait for storage
	ready      atomic.Bool // durable, and the stream is known to be there (Durable)
	statsStore atomic.Bool // the stats bucket is set up
	dropped    atomic.Uint64
	refused    atomic.Uint64 // events refused with ErrStoreFull
	liveOnly   atomic.Uint64 // lifecycle messages published live only: too many waited

	backlog   backlog
	unstored  atomic.Int64 // children's durable events waiting for storage
	lifecycle atomic.Int64 // lifecycle messages waiting for storage
	intake    intake       // to the collector
	acks      acker

	// mu is held for reading by Publish and for writing by Close, so that
	// nothing is published into a closed relay.
	mu     sync.RWMutex
	closed bool

	waitCtx     context.Context // ends waiting: Release or Close
	stopWaiting context.CancelFunc
	ctx         context.Context // the goroutines' life
	cancel      context.CancelFunc
	work        sync.WaitGroup // the collector and the backlog pump
	bg          sync.WaitGroup // the status watcher and the stream keeper
	ensureNow   chan struct{}
	retryWait   time.Duration // the collector's backoff
	retryLogged time.Time     // the collector's last "sending again"
}

var _ node.Reporter = (*Relay)(nil)

// New returns a Relay publishing on nc and starts its goroutines.
func New(nc *nats.Conn, cfg Config) *Relay {
	if cfg.Buffer <= 0 {
		cfg.Buffer = DefaultBuffer
	}
	if cfg.StoreTimeout <= 0 || cfg.StoreTimeout > bus.DuplicateWindow {
		cfg.StoreTimeout = DefaultStoreTimeout
	}
	if cfg.AckTimeout <= 0 {
		cfg.AckTimeout = DefaultAckTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	js, _ := jetstream.New(nc) // without options, New cannot fail
	r := &Relay{
		nc: nc, js: js, cfg: cfg, nodeID: []string{cfg.NodeID}, log: cfg.Logger.With("node", cfg.NodeID),
		link: newLink(nc), ids: newMsgIDs(),
		intake:  intake{wake: make(chan struct{}, 1)},
		backlog: backlog{limit: cfg.Buffer, wake: make(chan struct{}, 1)}, ensureNow: make(chan struct{}, 1),
		acks: acker{waiting: make(map[uint64]*storedEvent), wake: make(chan struct{}, 1)},
	}
	if cfg.Durable {
		if err := r.listen(); err != nil {
			// Only a closed connection refuses a subscription: nothing
			// can be stored, so nothing waits for storage.
			r.log.Error("durable events off", "err", err)
			cfg.Durable, r.cfg.Durable = false, false
		}
	}
	r.durable.Store(cfg.Durable)
	r.ready.Store(cfg.Durable && cfg.Stream == nil)
	if cfg.Durable {
		r.log.Info("durable events on: a child's ack waits until JetStream stored the event", "stream", bus.StreamName)
	}
	r.waitCtx, r.stopWaiting = context.WithCancel(context.Background())
	r.ctx, r.cancel = context.WithCancel(context.Background())
	statuses := nc.StatusChanged()
	r.link.refresh() // after subscribing to changes: none is missed
	r.bg.Add(2)
	go r.watch(statuses)
	go r.keepStream()
	r.work.Add(2)
	go r.collect()
	go r.pump()
	return r
}

// Durable reports whether the durable store is ready: events with an id
// wait for JetStream storage, and the stream is there (set up by
// EnsureStream, or promised when Config.Stream is nil). Acks wait for
// storage before that too (Config.Durable); until then they wait for the
// stream as well.
func (r *Relay) Durable() bool { return r.ready.Load() }

// Dropped is the number of messages lost since the relay started: the
// target is zero.
func (r *Relay) Dropped() uint64 { return r.dropped.Load() }

// Publish implements node.Reporter. Reports from a child (events,
// heartbeats, connected, the child's stats) may block while NATS is away
// or JetStream is behind, until there is room or Release is called.
func (r *Relay) Publish(rep node.Report) error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		r.drop(r.subject(&rep), ErrClosed)
		return fmt.Errorf("cannot publish %s: %w", r.subject(&rep), ErrClosed)
	}
	if rep.Kind == node.KindHeartbeat && !r.listened(bus.SubjectHeartbeat) {
		if rep.Done != nil {
			rep.Done(nil) // nobody to hand it to: as good as handed to NATS
		}
		return nil
	}
	var perName, general bool
	if rep.Kind == node.KindStats {
		perName, general = r.listened(r.subjects.get(rep.Name, statsKey)), r.listened(bus.SubjectStats)
		if !perName && !general && (!r.statsStore.Load() || rep.ProcessID == "") {
			return nil
		}
	}
	data, copied := rep.Raw, false
	if data == nil {
		var err error
		if data, err = json.Marshal(rep.Payload); err != nil {
			return fmt.Errorf("cannot encode %s payload: %w", r.subject(&rep), err)
		}
		copied = true
	}
	paced := fromChild(rep)
	if rep.Kind == node.KindStats {
		// The per-name subject first, then the general one, as the original.
		// The history's subjects take in the first one: its header keeps it
		// out (bus.HistorySubjects).
		if perName {
			id, _ := r.ids.get()
			m := r.message(r.subjects.get(rep.Name, statsKey), &rep, id, data, copied)
			m.Header[bus.HeaderExpectedStream] = []string{bus.LiveOnly}
			if err := r.publish(m, paced, true); err != nil {
				return err
			}
		}
		if general {
			if err := r.publishReport(bus.SubjectStats, &rep, "", data, paced, copied); err != nil {
				return err
			}
		}
		return r.storeStats(&rep, data, paced, copied)
	}
	if rep.Kind == node.KindStopped || rep.Kind == node.KindCrashed {
		defer r.forgetStats(&rep)
	}
	if r.durable.Load() {
		switch {
		case rep.Done != nil && rep.MsgID != "":
			return r.publishDurable(r.newStoredEvent(r.subject(&rep), &rep, rep.MsgID, data))
		case rep.Kind != node.KindEvent && kept(rep.Kind):
			msgID := rep.MsgID
			if msgID == "" {
				msgID, _ = r.ids.get()
			}
			e := r.newStoredEvent(r.subject(&rep), &rep, msgID, data)
			if r.admitLifecycle(e.subject()) {
				r.storeLifecycle(e)
				return nil
			}
			e.free()
		}
	}
	if err := r.publishReport(r.subject(&rep), &rep, rep.MsgID, data, paced, copied); err != nil {
		return err
	}
	if rep.Done != nil {
		rep.Done(nil) // handed to NATS
	}
	return nil
}

// kept reports whether the history keeps reports of kind (all but the
// heartbeats and the stats: bus.HistorySubjects).
func kept(k node.Kind) bool { return k != node.KindHeartbeat && k != node.KindStats }

// admitLifecycle counts a lifecycle message in among those waiting for
// storage, or, when Buffer of them wait already, says so (in the log: the
// first ten, then one in a thousand) and reports false: the message is
// then published live only.
func (r *Relay) admitLifecycle(subject string) bool {
	if r.lifecycle.Add(1) <= int64(r.cfg.Buffer) {
		return true
	}
	r.lifecycle.Add(-1)
	if n := r.liveOnly.Add(1); n <= 10 || n%1000 == 0 {
		r.log.Error("lifecycle message published live only, not kept for storage: too many wait for the stream",
			"subject", subject, "max", r.cfg.Buffer, "liveOnly", n)
	}
	return false
}

// PublishLifecycle publishes a lifecycle message made elsewhere (the node
// loss that package presence announces, with its own headers and
// Nats-Msg-Id): in durable mode it is stored as the supervisor's are, sent
// again until it is, without waiting; otherwise it is a plain message.
// m must not be changed afterwards.
func (r *Relay) PublishLifecycle(m *nats.Msg) error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		r.drop(m.Subject, ErrClosed)
		return fmt.Errorf("cannot publish %s: %w", m.Subject, ErrClosed)
	}
	if r.durable.Load() && m.Header.Get(bus.HeaderMsgID) != "" && r.admitLifecycle(m.Subject) {
		e := storedEvents.Get().(*storedEvent)
		e.m, e.deadline = m, time.Time{}
		r.storeLifecycle(e)
		return nil
	}
	return r.publish(m, false, true)
}

// listened reports whether a live-only message on subject would reach
// anyone (Config.Listened).
func (r *Relay) listened(subject string) bool {
	return r.cfg.Listened == nil || r.cfg.Listened(subject)
}

// fromChild reports whether rep comes from a child's read loop, which may
// wait (that is how back-pressure reaches the child). The supervisor's own
// reports (lifecycle, watchdog, node-sampled stats) come from goroutines
// that must keep supervising, so they never wait.
func fromChild(rep node.Report) bool {
	switch rep.Kind {
	case node.KindEvent, node.KindHeartbeat, node.KindConnected:
		return true
	case node.KindStats:
		s, ok := rep.Payload.(api.StatsReport)
		return ok && s.Source == "client"
	}
	return false
}

func (r *Relay) subject(rep *node.Report) string {
	if rep.Kind == node.KindEvent {
		return r.subjects.get(rep.Name, rep.Event)
	}
	return kindSubjects[rep.Kind]
}

// publishReport publishes a report on subject with its headers, msgID
// (made up when empty) as its Nats-Msg-Id. owned says data is the
// message's own, not the caller's buffer.
func (r *Relay) publishReport(subject string, rep *node.Report, msgID string, data []byte, paced, owned bool) error {
	if msgID == "" {
		msgID, _ = r.ids.get()
	}
	if rep.ProcessID == "" {
		return r.publish(r.message(subject, rep, msgID, data, owned), paced, true)
	}
	o := r.newOutMsg(subject, rep, msgID, data)
	defer o.free()
	return r.publish(&o.msg, paced, false) // o is reused
}

// message returns a message of its own for a report (one that outlives
// Publish), with the Corral-* headers (those of a process only when rep
// is about one) and msgID; its data is a copy unless owned.
func (r *Relay) message(subject string, rep *node.Report, msgID string, data []byte, owned bool) *nats.Msg {
	h := make(nats.Header, 5)
	h[bus.HeaderNode] = r.nodeID
	if rep.ProcessID != "" {
		h[bus.HeaderProcessID] = []string{rep.ProcessID}
		h[bus.HeaderProcessName] = []string{rep.Name}
	}
	h[bus.HeaderMsgID] = []string{msgID}
	if !owned {
		data = bytes.Clone(data)
	}
	return &nats.Msg{Subject: subject, Header: h, Data: data}
}

// publish hands a message to NATS, or to the backlog while NATS is away
// and its reconnect buffer is full (or the backlog is not empty: order is
// kept). A message the backlog keeps is copied (keep) unless owned: a
// message of its own, not reused, whose data is not the caller's buffer.
func (r *Relay) publish(m *nats.Msg, paced, owned bool) error {
	if r.backlog.busy.Load() == 0 {
		err := r.nc.PublishMsg(m)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, nats.ErrConnectionClosed):
			r.drop(m.Subject, err)
			return fmt.Errorf("cannot publish on %s: %w", m.Subject, err)
		case !errors.Is(err, nats.ErrReconnectBufExceeded):
			return fmt.Errorf("cannot publish on %s: %w", m.Subject, err)
		}
	}
	if !owned {
		m = keep(m)
	}
	return r.enqueue(m, paced)
}

// keep returns a copy of m that outlives Publish: its own header and data.
func keep(m *nats.Msg) *nats.Msg {
	c := &nats.Msg{Subject: m.Subject, Header: make(nats.Header, len(m.Header)), Data: bytes.Clone(m.Data)}
	for k, v := range m.Header {
		c.Header[k] = slices.Clone(v)
	}
	return c
}

// drop counts a lost message and logs it: the first ten, then one in a
// thousand.
func (r *Relay) drop(subject string, err error) {
	n := r.dropped.Add(1)
	if n <= 10 || n%1000 == 0 {
		r.log.Error("message dropped", "subject", subject, "err", err, "dropped", n)
	}
}

// Release ends back-pressure for good: Publish no longer waits for room
// (reports from a child are refused with ErrClosed where they would
// wait for storage, and kept in the backlog up to its hard limit where
// they would wait for a reconnection). Call it when the node starts
// shutting down, so that read loops stalled by an outage let the
// supervisor finish.
func (r *Relay) Release() { r.stopWaiting() }

// Close stops the relay: Publish fails from now on, and Close waits until
// ctx ends for what is in flight to be stored (durable events) or handed
// to NATS (the backlog). Durable events still unconfirmed then get
// ErrClosed; backlog messages still unsent are counted as dropped.
// It does not close the connection.
func (r *Relay) Close(ctx context.Context) error {
	r.stopWaiting()
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.intake.close() // no Publish is running: nothing sends any more
	r.mu.Unlock()
	r.backlog.close()

	done := make(chan struct{})
	go func() { r.work.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		if r.unstored.Load() > 0 || r.backlog.busy.Load() > 0 {
			err = fmt.Errorf("cannot flush relay: %w", ctx.Err())
		} else if n := r.lifecycle.Load(); n > 0 {
			// Not a failure of the shutdown: they went out live, and the
			// stream (a cluster that lost its quorum as its nodes stop
			// together) did not answer in time.
			r.log.Warn("lifecycle messages not confirmed stored when the relay closed; they were published live",
				"messages", n, "stream", bus.StreamName)
		}
		r.cancel()
		<-done
	}
	r.cancel()
	r.bg.Wait()
	if r.acks.sub != nil {
		_ = r.acks.sub.Unsubscribe()
	}
	for _, m := range r.backlog.discard() {
		r.drop(m.Subject, ErrClosed)
	}
	return err
}

// watch follows the connection's status; when it comes back it wakes the
// backlog pump and has the stream ensured again.
func (r *Relay) watch(statuses chan nats.Status) {
	defer r.bg.Done()
	defer r.nc.RemoveStatusListener(statuses)
	for {
		select {
		case <-statuses:
			cameUp := r.link.refresh()
			r.acks.poke() // the collector checks for attempts lost with the connection
			if cameUp {
				r.backlog.poke()
				select {
				case r.ensureNow <- struct{}{}:
				default:
				}
			}
		case <-r.ctx.Done():
			return
		}
	}
}
