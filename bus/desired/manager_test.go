package desired

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/corral-run/corral/bus/registry"
)

// warnings is a slog.Handler that keeps the messages of warnings and
// errors.
type warnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) Enabled(context.Context, slog.Level) bool { return true }
func (w *warnings) Handle(_ context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		w.mu.Lock()
		w.msgs = append(w.msgs, r.Message)
		w.mu.Unlock()
	}
	return nil
}
func (w *warnings) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w *warnings) WithGroup(string) slog.Handler      { return w }

// At a cluster's first start the node registry, which the nodes' presence
// makes, is missing for a moment: the Manager waits for it without a
// warning (one came at every first start of `make run`).
func TestAManagerWaitsForTheRegistryQuietly(t *testing.T) {
	nc := startServer(t)
	logged := &warnings{}
	ready := make(chan struct{})
	m := New(nc, Config{NodeID: "n1", Interval: 100 * time.Millisecond, Logger: slog.New(logged),
		Ready: func() { close(ready) }})
	m.Start()
	t.Cleanup(m.Stop)
	time.AfterFunc(300*time.Millisecond, func() { // the presence makes it
		_, _ = m.js.CreateKeyValue(context.Background(), jetstream.KeyValueConfig{Bucket: registry.Bucket})
	})
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatal("the Manager did not set up once the registry was there")
	}
	logged.mu.Lock()
	defer logged.mu.Unlock()
	if len(logged.msgs) > 0 {
		t.Errorf("warnings while the registry was being made: %q", logged.msgs)
	}
}
