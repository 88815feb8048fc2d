package desired

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus"
)

// serviceView is the services as the reconciler knows them. Two sources
// feed it at once: the watch of services.> (followDesired) and the reread
// of the bucket every servicesReread (rereadServices), which rescues a
// watch that stalled. Either may be behind the other: a reread that read
// the bucket before a change may merge after the watch applied it, and a
// watch that lags may deliver a value a reread already replaced. So the
// view keeps, by name, the KV revision of what it holds, and takes a
// value or a deletion only when its revision is newer: whatever the
// order in which the sources arrive, the view never goes back.
type serviceView struct {
	specs map[string]api.ServiceSpec // nil until a first read of the bucket
	// revs is the revision of the spec held, or of the deletion seen, by
	// name. A name it lacks is deleted as of floor: a read of the whole
	// bucket at floor did not see it alive.
	revs  map[string]uint64
	floor uint64
}

// serviceRecord is one value of services.<name>: a spec, or a deletion
// (a delete, a purge, or a value that does not read as the service), at
// its revision.
type serviceRecord struct {
	name    string
	rev     uint64
	spec    api.ServiceSpec
	deleted bool
}

// serviceRecordOf reads a watch's entry of services.<name>.
func serviceRecordOf(e jetstream.KeyValueEntry) serviceRecord {
	r := serviceRecord{name: strings.TrimPrefix(e.Key(), servicePrefix), rev: e.Revision()}
	r.deleted = e.Operation() != jetstream.KeyValuePut || json.Unmarshal(e.Value(), &r.spec) != nil || r.spec.Name != r.name
	return r
}

// apply takes r if it is newer than what the view holds of its name, and
// reports whether it did.
func (v *serviceView) apply(r serviceRecord) bool {
	held, ok := v.revs[r.name]
	if !ok {
		held = v.floor
	}
	if r.rev <= held {
		return false
	}
	if v.revs == nil {
		v.revs = map[string]uint64{}
	}
	v.revs[r.name] = r.rev
	if r.deleted {
		delete(v.specs, r.name)
	} else {
		if v.specs == nil {
			v.specs = map[string]api.ServiceSpec{}
		}
		v.specs[r.name] = r.spec
	}
	return true
}

// applySnapshot takes a read of the whole bucket (the current values of a
// watch): its records, by apply, and the deletions it implies. asOf is the
// bucket's last revision taken before the read began (0 if unknown), so
// the read saw every service alive at asOf: a name it did not see, held
// at asOf or older, was removed since. A name held at a later revision
// may be newer than the read, and stays. It reports whether the view
// changed.
func (v *serviceView) applySnapshot(records []serviceRecord, asOf uint64) bool {
	changed := v.specs == nil // the first read
	if v.specs == nil {
		v.specs = map[string]api.ServiceSpec{}
	}
	seen := make(map[string]bool, len(records))
	for _, r := range records {
		seen[r.name] = true
		changed = v.apply(r) || changed
	}
	for name, rev := range v.revs {
		_, alive := v.specs[name]
		if rev > asOf || alive && seen[name] {
			continue
		}
		// Deleted as of asOf: the floor says so from now on.
		if alive {
			delete(v.specs, name)
			changed = true
		}
		delete(v.revs, name)
	}
	v.floor = max(v.floor, asOf)
	return changed
}

// readServices reads services.> as it is now: every value, deletions
// included, and the bucket's last revision before the read (see
// applySnapshot).
func readServices(ctx context.Context, kv jetstream.KeyValue) (records []serviceRecord, asOf uint64, err error) {
	asOf = lastRevision(ctx, kv)
	w, err := retry(ctx, func() (jetstream.KeyWatcher, error) { return kv.Watch(ctx, servicePrefix+">") })
	if err != nil {
		return nil, 0, fmt.Errorf("cannot read the services: %w", err)
	}
	defer bus.StopWatch(w)
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return nil, 0, fmt.Errorf("cannot read the services: %w", ctx.Err())
			}
			if e == nil {
				return records, asOf, nil
			}
			records = append(records, serviceRecordOf(e))
		case <-ctx.Done():
			return nil, 0, fmt.Errorf("cannot read the services: %w", ctx.Err())
		}
	}
}

// lastRevision is the bucket's last revision (its stream's last
// sequence), or 0 when it cannot be read.
func lastRevision(ctx context.Context, kv jetstream.KeyValue) uint64 {
	st, err := kv.Status(ctx)
	if err != nil {
		return 0
	}
	if bs, ok := st.(*jetstream.KeyValueBucketStatus); ok {
		return bs.StreamInfo().State.LastSeq
	}
	return 0
}
