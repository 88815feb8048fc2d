package daemon_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/corral-run/corral/bus"
	"github.com/corral-run/corral/internal/testchild"
)

// [nats] stats_store sets up the stats bucket with the event stream; by
// default there is none.
func TestStatsStoreKey(t *testing.T) {
	for _, on := range []bool{false, true} {
		t.Run(fmt.Sprint(on), func(t *testing.T) {
			d := startDaemon(t, parseConfig(t, fmt.Sprintf("[node]\nid = \"n1\"\ndata_dir = %q\n[nats]\nlisten = \"127.0.0.1:0\"\nstats_store = %t\n",
				testchild.ShortTempDir(t), on)), slog.LevelWarn)
			nc, err := nats.Connect(d.ClientURL())
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			js, _ := jetstream.New(nc)
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			_, err = js.KeyValue(ctx, bus.StatsBucket)
			if on && err != nil || !on && !errors.Is(err, jetstream.ErrBucketNotFound) {
				t.Errorf("stats_store = %t: bucket %v", on, err)
			}
		})
	}
}
