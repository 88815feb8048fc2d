package relay

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/corral-run/corral/bus"
	"github.com/nats-io/nats.go/jetstream"
)

// StreamConfig limits the event stream.
type StreamConfig struct {
	// MaxAge is how long events are kept; 0 keeps them until MaxBytes
	// pushes them out. A MaxAge under DuplicateWindow shortens the
	// de-duplication window to MaxAge.
	MaxAge time.Duration
	// MaxBytes bounds the stream's size; the oldest events go first.
	// 0 or -1 means no limit.
	MaxBytes int64
	// Replicas is the number of copies in a JetStream cluster (1 to 5).
	// 0 means auto: the replicas of the stream as it is, when it exists;
	// when it does not, AutoReplicas of the servers the connection knows
	// (the URLs it was given and those it discovered).
	Replicas int
}

// EnsureStream creates the event stream CORRAL_EVENTS (the lifecycle
// messages and children's events of process.>, bus.HistorySubjects; file
// storage, limits from cfg, de-duplicated by Nats-Msg-Id),
// or updates it to cfg when it exists. It is idempotent: every node calls it
// at start. It first waits for JetStream (WaitJetStream), and asks again
// when a request gets no answer, until ctx ends. When the server has no
// JetStream the error wraps ErrNoJetStream.
func EnsureStream(ctx context.Context, js jetstream.JetStream, cfg StreamConfig) (jetstream.Stream, error) {
	for {
		if err := bus.WaitJetStream(ctx, js); err != nil {
			return nil, fmt.Errorf("cannot set up stream %s: %w", bus.StreamName, err)
		}
		// In a cluster, a request can go unanswered: when the members of
		// a new cluster all create the stream at once, the meta leader
		// answers one of them.
		actx, cancel := context.WithTimeout(ctx, streamRequestTimeout)
		st, err := ensureStream(actx, js, cfg)
		cancel()
		if err == nil || ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
			return st, err
		}
	}
}

// streamRequestTimeout bounds one attempt of EnsureStream.
const streamRequestTimeout = 2 * time.Second

func ensureStream(ctx context.Context, js jetstream.JetStream, cfg StreamConfig) (jetstream.Stream, error) {
	replicas := cfg.Replicas
	if replicas <= 0 {
		st, err := js.Stream(ctx, bus.StreamName)
		switch {
		case err == nil:
			replicas = st.CachedInfo().Config.Replicas // auto never rescales a stream
		case errors.Is(err, jetstream.ErrStreamNotFound):
			replicas = bus.AutoReplicas(bus.KnownServers(js.Conn()))
		default:
			return nil, fmt.Errorf("cannot set up stream %s: %w", bus.StreamName, err)
		}
	}
	sc := jetstream.StreamConfig{
		Name:        bus.StreamName,
		Description: "Corral event history: the lifecycle messages and children's events of process.> (heartbeats and stats are live only)",
		Subjects:    bus.HistorySubjects(),
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      cfg.MaxAge,
		MaxBytes:    cfg.MaxBytes,
		Replicas:    max(replicas, 1),
		Duplicates:  bus.DuplicateWindow,
	}
	if sc.MaxAge > 0 && sc.MaxAge < sc.Duplicates {
		sc.Duplicates = sc.MaxAge // the server refuses a window longer than the age limit
	}
	if sc.MaxBytes == 0 {
		sc.MaxBytes = -1
	}
	st, err := js.CreateOrUpdateStream(ctx, sc)
	if err != nil {
		if bus.IsNoJetStream(err) {
			err = bus.ErrNoJetStream
		}
		return nil, fmt.Errorf("cannot set up stream %s: %w", bus.StreamName, err)
	}
	return st, nil
}
