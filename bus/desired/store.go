package desired

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus"
	"github.com/corral-run/corral/bus/registry"
)

// The buckets.
const (
	Bucket = bus.DesiredBucket

	servicePrefix    = "services."
	definitionPrefix = "definitions."
)

// Bounds of the desired state: it is operator input, kept in every
// JetStream server of the cluster.
const (
	MaxServices    = 1000
	MaxDefinitions = 1000
	maxBucketBytes = 256 << 20
)

// ensure creates the desired-state bucket, or returns it as it is, and
// opens the node registry, which holds the reconciler's lease (the
// registry is set up by the nodes' presence).
func ensure(ctx context.Context, js jetstream.JetStream) (desired, leases jetstream.KeyValue, err error) {
	leases, err = registry.Open(ctx, js)
	if err != nil {
		return nil, nil, err
	}
	desired, err = ensureBucket(ctx, js, jetstream.KeyValueConfig{
		Bucket: Bucket, Description: "Corral desired state: services.<name>, definitions.<name> (corralctl apply)",
		History: 1, Storage: jetstream.FileStorage, Replicas: replicasLike(ctx, js), MaxBytes: maxBucketBytes, MaxValueSize: 1 << 20,
	})
	return desired, leases, err
}

// ensureBucket opens the bucket, creating it when missing. An existing
// bucket is used as it is: every node calls this, and the first one's
// settings stand.
func ensureBucket(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, cfg)
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = js.KeyValue(ctx, cfg.Bucket) // another node was first
		}
	}
	if err != nil {
		if bus.IsNoJetStream(err) {
			err = bus.ErrNoJetStream
		}
		return nil, fmt.Errorf("cannot set up bucket %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}

// replicasLike follows the node registry's replicas, or the servers known.
func replicasLike(ctx context.Context, js jetstream.JetStream) int {
	if kv, err := js.KeyValue(ctx, registry.Bucket); err == nil {
		if st, err := kv.Status(ctx); err == nil {
			return max(st.Config().Replicas, 1)
		}
	}
	return bus.AutoReplicas(bus.KnownServers(js.Conn()))
}

// read returns the whole desired state, sorted by name.
func read(ctx context.Context, kv jetstream.KeyValue) (api.DesiredState, error) {
	out := api.DesiredState{Services: []api.ServiceSpec{}, Definitions: []api.AppliedDefinition{}}
	w, err := retry(ctx, func() (jetstream.KeyWatcher, error) { return kv.WatchAll(ctx, jetstream.IgnoreDeletes()) })
	if err != nil {
		return out, fmt.Errorf("cannot read the desired state: %w", err)
	}
	defer bus.StopWatch(w)
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return out, fmt.Errorf("cannot read the desired state: %w", ctx.Err())
			}
			if e == nil {
				slices.SortFunc(out.Services, func(a, b api.ServiceSpec) int { return strings.Compare(a.Name, b.Name) })
				slices.SortFunc(out.Definitions, func(a, b api.AppliedDefinition) int {
					return strings.Compare(a.Definition.Name, b.Definition.Name)
				})
				return out, nil
			}
			switch {
			case strings.HasPrefix(e.Key(), servicePrefix):
				var s api.ServiceSpec
				if json.Unmarshal(e.Value(), &s) == nil {
					out.Services = append(out.Services, s)
				}
			case strings.HasPrefix(e.Key(), definitionPrefix):
				var d api.AppliedDefinition
				if json.Unmarshal(e.Value(), &d) == nil {
					out.Definitions = append(out.Definitions, d)
				}
			}
		case <-ctx.Done():
			return out, fmt.Errorf("cannot read the desired state: %w", ctx.Err())
		}
	}
}

// putIfChanged writes v at key unless it is there already, and says
// whether the key was created, updated or left.
func putIfChanged(ctx context.Context, kv jetstream.KeyValue, key string, v any) (string, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	e, err := retry(ctx, func() (jetstream.KeyValueEntry, error) { return kv.Get(ctx, key) })
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		if _, err := retry(ctx, func() (uint64, error) { return kv.Create(ctx, key, data) }); err != nil {
			return "", err
		}
		return "created", nil
	case err != nil:
		return "", err
	case string(e.Value()) == string(data):
		return "unchanged", nil
	}
	if _, err := retry(ctx, func() (uint64, error) { return kv.Update(ctx, key, data, e.Revision()) }); err != nil {
		return "", err
	}
	return "updated", nil
}

// count is how many keys the bucket has with prefix.
func count(ctx context.Context, kv jetstream.KeyValue, prefix string) (int, error) {
	keys, err := kv.ListKeysFiltered(ctx, prefix+">")
	if err != nil {
		return 0, err
	}
	n := 0
	for range keys.Keys() {
		n++
	}
	return n, nil
}

// retry runs op until it succeeds, fails for a reason other than
// JetStream not answering for a moment (a stream leader being elected
// after a node loss answers "no responders" or not at all), or ctx ends.
func retry[T any](ctx context.Context, op func() (T, error)) (T, error) {
	for {
		v, err := op()
		if err == nil || !transient(err) {
			return v, err
		}
		t := time.NewTimer(retryPause)
		select {
		case <-ctx.Done():
			t.Stop()
			return v, err
		case <-t.C:
		}
	}
}

const retryPause = 100 * time.Millisecond

func transient(err error) bool {
	return errors.Is(err, nats.ErrNoResponders) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, jetstream.ErrNoStreamResponse)
}
