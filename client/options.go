package client

import (
	"log/slog"
	"time"

	"github.com/corral-run/corral/client/wire"
)

// Defaults of the options.
const (
	DefaultHeartbeatInterval    = 5 * time.Second
	DefaultReconnectInterval    = 2 * time.Second
	DefaultMaxReconnectAttempts = 30
	DefaultStatsInterval        = 5 * time.Second
	// DefaultBufferEvents and DefaultBufferBytes bound the events a client
	// holds (see [WithBuffer]).
	DefaultBufferEvents = 10000
	DefaultBufferBytes  = 16 << 20
)

// An Option changes a setting of a [Client].
type Option func(*options)

type options struct {
	heartbeat     time.Duration
	reconnect     time.Duration
	maxAttempts   int
	stats         bool
	statsInterval time.Duration
	log           *slog.Logger
	acks          bool
	maxLineBytes  int
	bufEvents     int
	bufBytes      int
}

func newOptions(opts []Option) options {
	o := options{
		heartbeat:     DefaultHeartbeatInterval,
		reconnect:     DefaultReconnectInterval,
		maxAttempts:   DefaultMaxReconnectAttempts,
		statsInterval: DefaultStatsInterval,
		acks:          true,
		maxLineBytes:  wire.DefaultMaxLineBytes,
		bufEvents:     DefaultBufferEvents,
		bufBytes:      DefaultBufferBytes,
	}
	for _, opt := range opts {
		opt(&o)
	}
	if o.log == nil {
		o.log = slog.Default()
	}
	return o
}

// WithHeartbeatInterval sets how often the client sends a heartbeat; the
// first goes one interval after each connect. Zero or less keeps the
// default, 5 s.
func WithHeartbeatInterval(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.heartbeat = d
		}
	}
}

// WithReconnectInterval sets the wait between two connection attempts.
// Zero or less keeps the default, 2 s.
func WithReconnectInterval(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.reconnect = d
		}
	}
}

// WithMaxReconnectAttempts sets how many times the client tries to
// reconnect after the connection drops before it gives up (and how many
// times [Client.Connect] retries a failed first dial). 0 means never retry;
// a negative n keeps the default, 30.
func WithMaxReconnectAttempts(n int) Option {
	return func(o *options) {
		if n >= 0 {
			o.maxAttempts = n
		}
	}
}

// WithStats turns the client's own stats reports on or off. When on, the
// client sends one right after each connect and then every interval
// (zero or less: 5 s). Off by default: the node measures every child's
// process tree itself.
func WithStats(enabled bool, interval time.Duration) Option {
	return func(o *options) {
		o.stats = enabled
		if interval > 0 {
			o.statsInterval = interval
		}
	}
}

// WithLogger sets the logger for connection events and warnings (default
// [slog.Default]).
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.log = l }
}

// WithAcks turns acknowledged events on (the default) or off. With acks on,
// every event carries an id and [Client.Emit] waits for the node's answer.
// With acks off, events carry no id, Emit returns once the event is queued,
// and the node's verdict is only in its log; events queued while the node
// is away, or not yet written when a connection drops, are sent on the next
// connection, but lines the kernel had already taken when the connection
// dropped may be lost, and nothing tells the client which. Turn acks off to
// talk to a server that does not answer ids, such as the original
// TypeScript one: against it an Emit with acks on would wait until its ctx
// ends.
func WithAcks(on bool) Option {
	return func(o *options) { o.acks = on }
}

// WithMaxLineBytes sets the longest line the client sends or accepts,
// newline excluded (default [wire.DefaultMaxLineBytes], 1 MiB). It should
// match the node's limit. Zero or less keeps the default.
func WithMaxLineBytes(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.maxLineBytes = n
		}
	}
}

// WithBuffer bounds the events the client holds: with acks on, from Emit
// until the node answers; with acks off, from Emit until the event is
// written to the socket. While the node is away every new event waits in
// this buffer. When the buffer holds maxEvents events, or an event would
// take it past maxBytes (encoded lines, ids included), [Client.Emit] and
// [Client.EmitAsync] wait for room until their ctx ends; they never drop
// an event. One event is always let in when the buffer is empty, whatever
// its size. Zero or less keeps a default: 10000 events, 16 MiB.
func WithBuffer(maxEvents, maxBytes int) Option {
	return func(o *options) {
		if maxEvents > 0 {
			o.bufEvents = maxEvents
		}
		if maxBytes > 0 {
			o.bufBytes = maxBytes
		}
	}
}
