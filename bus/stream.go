package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// StreamName is the JetStream stream that keeps the event history: every
// message on process.>.
const StreamName = "CORRAL_EVENTS"

// DuplicateWindow is how long the stream remembers a Nats-Msg-Id: an
// event published again within it (a resend after a lost ack) is stored
// once. The relay gives up on storing an event after StoreTimeout, no
// longer than this, so its own retries never outlive the window.
const DuplicateWindow = 2 * time.Minute

// ErrNoJetStream says the NATS server has no JetStream (or not for this
// account), so there is no event history and no durable event.
var ErrNoJetStream = errors.New("JetStream is not available")

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
	// Default 1.
	Replicas int
}

// EnsureStream creates the event stream CORRAL_EVENTS (subjects
// process.>, file storage, limits from cfg, de-duplicated by Nats-Msg-Id),
// or updates it to cfg when it exists. It is idempotent: every node calls it
// at start. When the server has no JetStream the error wraps
// ErrNoJetStream.
func EnsureStream(ctx context.Context, js jetstream.JetStream, cfg StreamConfig) (jetstream.Stream, error) {
	sc := jetstream.StreamConfig{
		Name:        StreamName,
		Description: "Corral event history: everything published on process.>",
		Subjects:    []string{SubjectAll},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      cfg.MaxAge,
		MaxBytes:    cfg.MaxBytes,
		Replicas:    max(cfg.Replicas, 1),
		Duplicates:  DuplicateWindow,
	}
	if sc.MaxAge > 0 && sc.MaxAge < sc.Duplicates {
		sc.Duplicates = sc.MaxAge // the server refuses a window longer than the age limit
	}
	if sc.MaxBytes == 0 {
		sc.MaxBytes = -1
	}
	st, err := js.CreateOrUpdateStream(ctx, sc)
	if err != nil {
		if errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrJetStreamNotEnabled) ||
			errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) {
			err = ErrNoJetStream
		}
		return nil, fmt.Errorf("cannot set up stream %s: %w", StreamName, err)
	}
	return st, nil
}
