package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus"
	"github.com/nats-io/nats.go/jetstream"
)

// The node registry is the JetStream KV bucket CORRAL_NODES. Every node
// puts its NodeInfo at the key <node> each heartbeat interval, and its
// unfinished processes (NodeProcesses) at <node>.procs when they change.
// A record the node stopped refreshing tells a client at once that the
// node is gone and what ran there; the surviving node that announces the
// loss (process.node_lost) marks the record Lost, with a compare-and-set.
// Nodes read the records once, when they start to follow the registry,
// and then follow the heartbeats and the process lists (package
// bus/presence). Without JetStream there is no registry:
// discovery is live only (the nodes that answer now), and gone nodes are
// not shown.

// Bucket is the KV bucket of the node registry (bus.RegistryBucket).
const Bucket = bus.RegistryBucket

// DefaultHeartbeatInterval is how often a node announces itself unless
// service.Config.HeartbeatInterval says otherwise.
const DefaultHeartbeatInterval = 2 * time.Second

// MissedHeartbeats is how many heartbeat intervals a node may stay quiet
// before it is gone.
const MissedHeartbeats = 3

// MaxAge is how long the registry keeps a record nobody refreshes: a node
// gone for good drops out of `corralctl nodes` after a day. Nodes refresh
// their process list well within it, so the records of live nodes never
// expire.
const MaxAge = 24 * time.Hour

// Config configures the node registry.
type Config struct {
	// Replicas is the number of copies of the bucket in a JetStream
	// cluster (1 to 5); give it the event stream's. 0 means auto: the
	// bucket's replicas as it is, when it exists, else the event stream's
	// when that exists, else AutoReplicas of the servers the connection
	// knows.
	Replicas int
}

// Ensure creates the registry bucket CORRAL_NODES, or updates it
// to cfg. It is idempotent: every node calls it. When the server has no
// JetStream the error wraps ErrNoJetStream.
func Ensure(ctx context.Context, js jetstream.JetStream, cfg Config) (jetstream.KeyValue, error) {
	replicas := cfg.Replicas
	if replicas <= 0 {
		replicas = autoReplicas(ctx, js)
	}
	want := jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "Corral node registry: <node> is the node's last heartbeat, <node>.procs its processes",
		History:     1,
		TTL:         MaxAge,
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
	}
	// Every node calls this at once when a cluster starts: look before
	// writing, and only create or update when needed, since concurrent
	// updates of a stream being created in a JetStream cluster can go
	// unanswered.
	kv, err := js.KeyValue(ctx, Bucket)
	switch {
	case err == nil:
		st, serr := kv.Status(ctx)
		if serr == nil && st.Config().Replicas == want.Replicas && st.TTL() == want.TTL && st.History() == int64(want.History) {
			return kv, nil
		}
		kv, err = js.UpdateKeyValue(ctx, want)
	case errors.Is(err, jetstream.ErrBucketNotFound):
		kv, err = js.CreateKeyValue(ctx, want)
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = js.KeyValue(ctx, Bucket) // another node was first
		}
	}
	if err != nil {
		if bus.IsNoJetStream(err) {
			err = bus.ErrNoJetStream
		}
		return nil, fmt.Errorf("cannot set up node registry %s: %w", Bucket, err)
	}
	return kv, nil
}

// autoReplicas is Config.Replicas 0: auto never rescales
// the bucket, and follows the event stream.
func autoReplicas(ctx context.Context, js jetstream.JetStream) int {
	if kv, err := js.KeyValue(ctx, Bucket); err == nil {
		if st, err := kv.Status(ctx); err == nil {
			return st.Config().Replicas
		}
	}
	if st, err := js.Stream(ctx, bus.StreamName); err == nil {
		return st.CachedInfo().Config.Replicas
	}
	return bus.AutoReplicas(bus.KnownServers(js.Conn()))
}

// GoneAfter is how long a node with this heartbeat interval may stay
// quiet before it is gone.
func GoneAfter(intervalMs int64) time.Duration {
	interval := time.Duration(intervalMs) * time.Millisecond
	if interval <= 0 {
		interval = DefaultHeartbeatInterval
	}
	return MissedHeartbeats * interval
}

// Record is a node's record as read from the registry.
type Record struct {
	Info api.NodeInfo
	Rev  uint64
	At   time.Time // when the server stored it
}

// Gone reports whether the record says the node is gone at now: a
// surviving node declared it lost, or it is older than MissedHeartbeats
// intervals (judged by the server's timestamp, so the node's own clock
// does not matter).
func (r Record) Gone(now time.Time) bool {
	return r.Info.Lost || now.Sub(r.At) > GoneAfter(r.Info.IntervalMs)
}

// errNoRegistry says there is no node registry to read: no JetStream, or
// no node created the bucket.
var ErrNoRegistry = errors.New("no node registry")

// registryBucket returns the registry bucket, or errNoRegistry.
func Open(ctx context.Context, js jetstream.JetStream) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, Bucket)
	switch {
	case err == nil:
		return kv, nil
	case errors.Is(err, jetstream.ErrBucketNotFound) || bus.IsNoJetStream(err):
		return nil, fmt.Errorf("%w: %v", ErrNoRegistry, err)
	}
	return nil, fmt.Errorf("cannot open node registry: %w", err)
}

// readRecords reads every node record of the registry.
func ReadRecords(ctx context.Context, kv jetstream.KeyValue) (map[string]Record, error) {
	out := map[string]Record{}
	err := readKeys(ctx, kv, nodeKeys, func(e jetstream.KeyValueEntry) {
		var info api.NodeInfo
		if json.Unmarshal(e.Value(), &info) == nil && info.ID == e.Key() {
			out[e.Key()] = Record{Info: info, Rev: e.Revision(), At: e.Created()}
		}
	})
	return out, err
}

// readProcs reads the process lists of the nodes given, skipping those
// that have none, or whose list cannot be read (the error says which).
func ReadProcs(ctx context.Context, kv jetstream.KeyValue, nodes []string) (map[string][]api.ProcessSummary, error) {
	out := make(map[string][]api.ProcessSummary, len(nodes))
	var errs []error
	for _, n := range nodes {
		np, ok, err := readList(ctx, kv, n)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ok {
			out[n] = np.Processes
		}
	}
	return out, errors.Join(errs...)
}

// readList reads node's process list, all its parts; ok is false when it
// has none. A list written again as it is read is read again; one that
// stays torn (its node died between writing the other parts and the
// first) is its first part alone (FirstOnly).
func readList(ctx context.Context, kv jetstream.KeyValue, node string) (np api.NodeProcesses, ok bool, err error) {
	for try := 0; ; try++ {
		e, err := kv.Get(ctx, ProcsKey(node))
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return np, false, nil
		}
		if err != nil {
			return np, false, fmt.Errorf("cannot read processes of node %q: %w", node, err)
		}
		var first api.NodeProcesses
		if json.Unmarshal(e.Value(), &first) != nil || first.Node != node {
			return np, false, nil
		}
		np, err = JoinList(ctx, kv, first)
		switch {
		case err == nil:
			return np, true, nil
		case try < 2 && (errors.Is(err, ErrListChanged) || errors.Is(err, jetstream.ErrKeyNotFound)):
			select { // the first part of the list being written is on its way
			case <-time.After(20 * time.Millisecond):
			case <-ctx.Done():
				return np, false, fmt.Errorf("cannot read processes of node %q: %w", node, ctx.Err())
			}
		default:
			return FirstOnly(first), true, nil
		}
	}
}

// findOwner looks for the node that last announced process id.
func FindOwner(ctx context.Context, kv jetstream.KeyValue, id string) (string, bool, error) {
	owner := ""
	err := readKeys(ctx, kv, procsKeys, func(e jetstream.KeyValueEntry) {
		var np api.NodeProcesses
		if owner != "" || json.Unmarshal(e.Value(), &np) != nil {
			return
		}
		if joined, err := JoinList(ctx, kv, np); err == nil {
			np = joined
		}
		for _, p := range np.Processes {
			if p.ID == id {
				owner = np.Node
				return
			}
		}
	})
	return owner, owner != "", err
}

// readKeys calls fn with the current value of every key matching filter.
func readKeys(ctx context.Context, kv jetstream.KeyValue, filter string, fn func(jetstream.KeyValueEntry)) error {
	w, err := kv.Watch(ctx, filter, jetstream.IgnoreDeletes())
	if err != nil {
		return fmt.Errorf("cannot read node registry: %w", err)
	}
	defer bus.StopWatch(w)
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return fmt.Errorf("cannot read node registry: %w", ctx.Err())
			}
			if e == nil {
				return nil // the current values are all in
			}
			fn(e)
		case <-ctx.Done():
			return fmt.Errorf("cannot read node registry: %w", ctx.Err())
		}
	}
}
