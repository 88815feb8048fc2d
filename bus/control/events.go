package control

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus"
	"github.com/nats-io/nats.go"
)

// Event is one message seen on an event subject: what Control.Events hands
// to its callback and what corralctl prints with --json.
type Event struct {
	Subject string `json:"subject"`
	// Headers are the message's NATS headers (Corral-Node,
	// Corral-Process-Id, Corral-Process-Name, Nats-Msg-Id); never nil.
	Headers map[string][]string `json:"headers"`
	// Data is the payload. It is always valid JSON, so an Event always
	// marshals: a payload that is not JSON (published by hand, say) is
	// carried as a JSON string, an empty one as null.
	Data json.RawMessage `json:"data"`
	// Time and Seq are when the stream stored the message and its stream
	// sequence: set on events replayed by Control.History, zero on live
	// ones.
	Time time.Time `json:"time,omitzero"`
	Seq  uint64    `json:"seq,omitempty"`
}

// Header returns the first value of the header key, or "".
func (e Event) Header(key string) string {
	return nats.Header(e.Headers).Get(key)
}

func newEvent(m *nats.Msg) Event { return makeEvent(m.Subject, m.Header, m.Data) }

func makeEvent(subject string, h nats.Header, data []byte) Event {
	e := Event{Subject: subject, Headers: map[string][]string(h), Data: data}
	if e.Headers == nil {
		e.Headers = map[string][]string{}
	}
	switch {
	case len(data) == 0:
		e.Data = json.RawMessage("null")
	case !json.Valid(data):
		e.Data, _ = json.Marshal(string(data))
	}
	return e
}

// EventsOption configures Control.Events.
type EventsOption func(*eventsConfig)

type eventsConfig struct {
	onSubscribed           func()
	pendingMsgs, pendingBy int
}

// PendingLimits bounds what Events holds for fn: at most msgs messages and
// bytes bytes received and not yet handed over (nats.go's defaults are
// 512 Ki messages and 64 MiB). Beyond them NATS drops messages. A program
// that follows events for others (an HTTP gateway, say) sets them low.
func PendingLimits(msgs, bytes int) EventsOption {
	return func(c *eventsConfig) { c.pendingMsgs, c.pendingBy = msgs, bytes }
}

// OnSubscribed makes Events call fn once its subscription is in place on
// the server: everything published after fn is called is delivered. Use it
// to start what you want to watch (a spawn, say) without missing its first
// events. History calls it once its consumer is in place.
func OnSubscribed(fn func()) EventsOption {
	return func(c *eventsConfig) { c.onSubscribed = fn }
}

// Events subscribes to subject (SubjectAll, "process.>", when empty) and
// calls fn with every message, in the order received, on the calling
// goroutine, until ctx ends. It then unsubscribes and returns nil; fn is
// never called after Events returns.
//
// It returns an error when it cannot subscribe (an invalid subject) or the
// connection is closed under it. If fn falls so far behind that the
// subscription's pending limits overflow (nats.go's defaults: 512 Ki
// messages or 64 MiB; see PendingLimits), NATS drops messages and Events
// carries on with the ones that follow.
func (c *Control) Events(ctx context.Context, subject string, fn func(Event), opts ...EventsOption) error {
	var cfg eventsConfig
	for _, o := range opts {
		o(&cfg)
	}
	if subject == "" {
		subject = bus.SubjectAll
	}
	sub, err := c.nc.SubscribeSync(subject)
	if err != nil {
		return fmt.Errorf("cannot subscribe to %s: %w", subject, err)
	}
	defer sub.Unsubscribe()
	if cfg.pendingMsgs > 0 || cfg.pendingBy > 0 {
		if err := sub.SetPendingLimits(cmp.Or(cfg.pendingMsgs, -1), cmp.Or(cfg.pendingBy, -1)); err != nil {
			return fmt.Errorf("cannot subscribe to %s: %w", subject, err)
		}
	}
	flushCtx, cancel := c.withTimeout(ctx)
	err = c.nc.FlushWithContext(flushCtx)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("cannot subscribe to %s: %w", subject, err)
	}
	if cfg.onSubscribed != nil {
		cfg.onSubscribed()
	}
	for {
		m, err := sub.NextMsgWithContext(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, nats.ErrSlowConsumer):
			continue
		case err != nil:
			if errors.Is(err, nats.ErrPermissionViolation) {
				return api.Errorf(ErrNotPermitted, "not permitted: this user may not subscribe to %s", subject)
			}
			return fmt.Errorf("cannot receive on %s: %w", subject, err)
		}
		fn(newEvent(m))
	}
}

// SubscribeOption configures Subscribe.
type SubscribeOption func(*subscribeConfig)

type subscribeConfig struct {
	onDecodeError func(err error, e Event)
}

// OnDecodeError sets what Subscribe does with a message whose payload does
// not decode into its type: fn is called with the error and the message,
// and the message is skipped. Without it, Subscribe logs such messages with
// slog.Default at warning level and skips them.
func OnDecodeError(fn func(err error, e Event)) SubscribeOption {
	return func(c *subscribeConfig) { c.onDecodeError = fn }
}

// Subscribe subscribes to subject and calls fn with each message's payload
// decoded into a T (one of the payload types of package node, say
// node.Spawned for SubjectSpawned) and the message itself. Decoding is
// encoding/json's: fields T does not have are ignored, so payloads may grow.
// A payload that does not decode is not handed to fn: see OnDecodeError.
//
// fn runs on the subscription's own goroutine, one message at a time, in
// order. Stop with the returned subscription's Unsubscribe (fn may still be
// running for the message in hand when it returns) or Drain. The
// subscription reaches the server asynchronously; call nc.Flush first when
// you must not miss what is published right after Subscribe returns.
func Subscribe[T any](nc *nats.Conn, subject string, fn func(T, Event), opts ...SubscribeOption) (*nats.Subscription, error) {
	cfg := subscribeConfig{onDecodeError: logDecodeError}
	for _, o := range opts {
		o(&cfg)
	}
	sub, err := nc.Subscribe(subject, func(m *nats.Msg) {
		e := newEvent(m)
		var v T
		if err := json.Unmarshal(m.Data, &v); err != nil {
			cfg.onDecodeError(fmt.Errorf("cannot decode %s payload as %T: %w", m.Subject, v, err), e)
			return
		}
		fn(v, e)
	})
	if err != nil {
		return nil, fmt.Errorf("cannot subscribe to %s: %w", subject, err)
	}
	return sub, nil
}

func logDecodeError(err error, e Event) {
	slog.Default().Warn("skipping event", "subject", e.Subject, "process", e.Header(bus.HeaderProcessID), "err", err)
}
