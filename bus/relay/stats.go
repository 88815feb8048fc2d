package relay

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/corral-run/corral/bus"
	"github.com/corral-run/corral/node"
)

// The latest stats of each process (Config.StatsStore): a KV bucket of
// one value per process, in memory (a sample is worth keeping only until
// the next one), which the relay writes with plain publishes on the key's
// subject, as kv.Put would but without waiting for the PubAck.

// maxStatsBytes bounds the stats bucket: a sample is a few hundred bytes.
const maxStatsBytes = 64 << 20

// statsTTL is how long an entry of the stats bucket lasts when the event
// stream keeps its messages for ever (stream_max_age = 0): a running
// process writes its entry again at each sample, so only those of ended
// processes (and the delete markers their ends leave) expire, and the
// bucket, which refuses writes once full, does not fill up.
const statsTTL = time.Hour

// ensureStatsBucket sets up the stats bucket with the event stream's
// replicas and age limit, or statsTTL without one (entries of processes
// whose end was missed expire with it).
func (r *Relay) ensureStatsBucket(ctx context.Context, st jetstream.Stream) error {
	c := st.CachedInfo().Config
	ttl := c.MaxAge
	if ttl <= 0 {
		ttl = statsTTL
	}
	_, err := r.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      bus.StatsBucket,
		Description: "Corral: the latest stats of each process, key its id ([nats] stats_store)",
		History:     1, TTL: ttl, MaxBytes: maxStatsBytes, Storage: jetstream.MemoryStorage, Replicas: c.Replicas,
	})
	if err != nil {
		return fmt.Errorf("cannot set up bucket %s: %w", bus.StatsBucket, err)
	}
	if !r.statsStore.Swap(true) {
		r.log.Info("the latest stats of each process are kept", "bucket", bus.StatsBucket)
	}
	return nil
}

// storeStats writes a stats report as its process's latest.
func (r *Relay) storeStats(rep *node.Report, data []byte, paced, owned bool) error {
	if !r.statsStore.Load() || rep.ProcessID == "" {
		return nil
	}
	if !owned {
		data = bytes.Clone(data)
	}
	return r.publish(&nats.Msg{Subject: bus.StatsKeySubject(rep.ProcessID), Data: data}, paced, true)
}

// kvOperation is the KV header that marks a deleted key (as kv.Delete
// writes it).
const kvOperation = "KV-Operation"

// forgetStats deletes an ended process's key.
func (r *Relay) forgetStats(rep *node.Report) {
	if !r.statsStore.Load() || rep.ProcessID == "" {
		return
	}
	m := &nats.Msg{Subject: bus.StatsKeySubject(rep.ProcessID), Header: nats.Header{kvOperation: []string{"DEL"}}}
	if err := r.publish(m, false, true); err != nil {
		r.log.Warn("cannot delete the stats of an ended process", "process", rep.ProcessID, "err", err)
	}
}
