package control

import (
	"context"
	"errors"
	"fmt"
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
	subject := opts.Subject
	if subject == "" {
		subject = bus.SubjectAll
	}
	if bus.IsLiveOnly(subject) {
		return api.Errorf(ErrNotFound, "cannot replay %s: heartbeats and stats are not kept in the event history, only sent to live subscribers", subject)
	}
	js, err := jetstream.New(c.nc)
	if err != nil {
		return fmt.Errorf("cannot replay events: %w", err)
	}
	reqCtx, cancel := c.withTimeout(ctx)
	defer cancel()
	st, err := js.Stream(reqCtx, bus.StreamName)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return api.Errorf(ErrNotFound, "cannot replay events: no event history (stream %s does not exist)", bus.StreamName)
	case errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrJetStreamNotEnabled) ||
		errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount):
		return fmt.Errorf("cannot replay events: no event history: %w", bus.ErrNoJetStream)
	case err != nil:
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("cannot replay events: %w", err)
	}
	occ := jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}, DeliverPolicy: jetstream.DeliverAllPolicy}
	if !opts.Since.IsZero() {
		since := opts.Since
		occ.DeliverPolicy, occ.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
	}
	cons, err := st.OrderedConsumer(reqCtx, occ)
	if err != nil {
		return fmt.Errorf("cannot replay %s: %w", subject, err)
	}
	msgs, err := cons.Messages()
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
