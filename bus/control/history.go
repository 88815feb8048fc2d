package control

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// HistoryOptions selects what Control.History replays.
type HistoryOptions struct {
	// Subject narrows the replay to a subject or wildcard within
	// process.> (default process.>, the whole stream).
	Subject string
	// Subjects, when set, are several such filters, instead of Subject.
	// They may not overlap (JetStream refuses it).
	Subjects []string
	// Since replays what was stored from that time on; zero replays all
	// the stream holds.
	Since time.Time
	// ProcessID keeps only the messages of one process, by their
	// Corral-Process-Id header (the filter runs here, not on the server).
	ProcessID string
	// Follow keeps delivering messages as they are stored, until ctx
	// ends. Without it History returns once it has replayed what the
	// stream held when it started.
	Follow bool
	// AfterSeq starts the replay after that stream sequence (a client
	// that saw it resumes there: no gap, no duplicate); it wins over
	// Since. What the stream no longer holds (its limits let it go) is
	// skipped.
	AfterSeq uint64
	// New delivers only what is stored from now on (with Follow): no
	// replay. It wins over Since, not over AfterSeq.
	New bool
	// BufferBytes bounds what the consumer fetches ahead of fn
	// (jetstream.PullMaxBytes); 0 is jetstream's default of 500 messages.
	BufferBytes int
}

// History replays the event history kept in the stream CORRAL_EVENTS (see
// EnsureStream: the lifecycle messages and the children's events, not the
// heartbeats and stats) and calls fn with each message, in stream order, on the
// calling goroutine; the events carry Time and Seq. It returns nil when ctx
// ends or, without Follow, when the replay is done; fn is never called
// after it returns. OnSubscribed is honoured: fn is called once the
// consumer is in place.
//
// It reads through an ordered consumer (ephemeral: the server removes it
// once unused), which survives reconnections: following goes on after a
// NATS outage from where it stopped.
//
// The error wraps ErrNotFound when there is no event history (no node set
// up the stream) or subject is one the history does not keep (heartbeats,
// stats), and ErrNoJetStream when the server has no JetStream.
func (c *Control) History(ctx context.Context, opts HistoryOptions, fn func(Event), eopts ...EventsOption) error {
	var cfg eventsConfig
	for _, o := range eopts {
		o(&cfg)
	}
	filters := opts.Subjects
	if len(filters) == 0 {
		filters = []string{cmp.Or(opts.Subject, bus.SubjectAll)}
	}
	subject := strings.Join(filters, ", ") // for errors
	// Heartbeats and stats are not kept: filters of nothing else are left
	// out (JetStream refuses some, and the rest would wait for nothing).
	filters = slices.DeleteFunc(slices.Clone(filters), bus.IsLiveOnly)
	if len(filters) == 0 {
		return api.Errorf(ErrNotFound, "cannot replay %s: heartbeats and stats are not kept in the event history, only sent to live subscribers", subject)
	}
	reqCtx, cancel := c.withTimeout(ctx)
	defer cancel()
	st, err := c.stream(reqCtx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("cannot replay events: %w", err)
	}
	occ := jetstream.OrderedConsumerConfig{FilterSubjects: filters, DeliverPolicy: jetstream.DeliverAllPolicy}
	switch {
	case opts.AfterSeq > 0:
		occ.DeliverPolicy, occ.OptStartSeq = jetstream.DeliverByStartSequencePolicy, opts.AfterSeq+1
	case opts.New:
		occ.DeliverPolicy = jetstream.DeliverNewPolicy
	case !opts.Since.IsZero():
		since := opts.Since
		occ.DeliverPolicy, occ.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
	}
	cons, err := st.OrderedConsumer(reqCtx, occ)
	if err != nil {
		return fmt.Errorf("cannot replay %s: %w", subject, err)
	}
	var pull []jetstream.PullMessagesOpt
	if opts.BufferBytes > 0 {
		pull = append(pull, jetstream.PullMaxBytes(opts.BufferBytes))
	}
	msgs, err := cons.Messages(pull...)
	if err != nil {
		return fmt.Errorf("cannot replay %s: %w", subject, err)
	}
	defer msgs.Stop()
	cancel()
	if cfg.onSubscribed != nil {
		cfg.onSubscribed()
	}
	if info := cons.CachedInfo(); !opts.Follow && (info == nil || info.NumPending == 0) {
		return nil
	}
	for {
		m, err := msgs.Next(jetstream.NextContext(ctx))
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			return fmt.Errorf("cannot replay %s: %w", subject, err)
		}
		e := makeEvent(m.Subject(), m.Headers(), m.Data())
		md, err := m.Metadata()
		if err == nil {
			e.Time, e.Seq = md.Timestamp, md.Sequence.Stream
		}
		if opts.ProcessID == "" || e.Header(bus.HeaderProcessID) == opts.ProcessID {
			fn(e)
		}
		if !opts.Follow && err == nil && md.NumPending == 0 {
			return nil
		}
	}
}

// stream finds the event stream: an error wrapping ErrNotFound when there
// is none, ErrNoJetStream when the server has no JetStream.
func (c *Control) stream(ctx context.Context) (jetstream.Stream, error) {
	st, err := c.js.Stream(ctx, bus.StreamName)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return nil, api.Errorf(ErrNotFound, "no event history (stream %s does not exist)", bus.StreamName)
	case errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrJetStreamNotEnabled) ||
		errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount):
		return nil, fmt.Errorf("no event history: %w", bus.ErrNoJetStream)
	}
	return st, err
}

// HistoryState is what the event stream holds.
type HistoryState struct {
	// Subjects are the subjects it keeps (process.>, or some of it): the
	// events History can replay, each with its stream sequence. What is
	// published on other subjects is live only.
	Subjects []string
	// LastSeq is the sequence of the last event it stored.
	LastSeq uint64
}

// HistoryState describes the event stream. The error wraps ErrNotFound
// when there is no event history and ErrNoJetStream when the server has
// no JetStream.
func (c *Control) HistoryState(ctx context.Context) (HistoryState, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	st, err := c.stream(ctx)
	if err != nil {
		return HistoryState{}, fmt.Errorf("cannot read the event history's state: %w", err)
	}
	info := st.CachedInfo()
	return HistoryState{Subjects: info.Config.Subjects, LastSeq: info.State.LastSeq}, nil
}
