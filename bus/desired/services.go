package desired

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

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
	// bucket is when the bucket the revisions count in was created: a
	// bucket deleted and made again counts from 1 again, so a read of
	// another bucket starts the view afresh.
	bucket time.Time
	// seen is the bucket's last revision the view is known to be current
	// as of: the latest revision of services.> it took in, or where its
	// last read of the whole bucket began (Manager.behind).
	seen uint64
}

// bucketState is where a read of the whole bucket began: the bucket's
// last revision, and when the bucket was created (zero when unknown).
type bucketState struct {
	rev     uint64
	created time.Time
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
	v.seen = max(v.seen, r.rev)
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
// watch): its records, by apply, and the deletions it implies. at.rev,
// asOf below, is the bucket's last revision taken before the read began
// (0 if unknown), so the read saw every service alive at asOf: a name it
// did not see, held at asOf or older, was removed since. A name held at a
// later revision may be newer than the read, and stays. A read of a
// bucket created since the view's (deleted and made again) replaces the
// view. It reports whether the view changed.
func (v *serviceView) applySnapshot(records []serviceRecord, at bucketState) bool {
	asOf := at.rev
	changed := v.specs == nil // the first read
	switch {
	case at.created.IsZero() || at.created.Equal(v.bucket):
	case at.created.Before(v.bucket):
		return false // a read of the bucket before it was made again, merged late
	default:
		if !v.bucket.IsZero() { // a bucket made again: its revisions count from 1 again
			v.revs, v.floor, v.seen = nil, 0, 0
			changed = changed || len(v.specs) > 0
			clear(v.specs)
		}
		v.bucket = at.created
	}
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
	v.seen = max(v.seen, asOf)
	return changed
}

// readServices reads services.> as it is now: every value, deletions
// included, and where the read began (see applySnapshot).
func readServices(ctx context.Context, kv jetstream.KeyValue) (records []serviceRecord, at bucketState, err error) {
	at = bucketNow(ctx, kv)
	w, err := retry(ctx, func() (jetstream.KeyWatcher, error) { return kv.Watch(ctx, servicePrefix+">") })
	if err != nil {
		return nil, at, fmt.Errorf("cannot read the services: %w", err)
	}
	defer bus.StopWatch(w)
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return nil, at, fmt.Errorf("cannot read the services: %w", ctx.Err())
			}
			if e == nil {
				if !at.sameBucket(bucketNow(ctx, kv)) {
					return nil, at, fmt.Errorf("cannot read the services: %w", errBucketMadeAgain)
				}
				return records, at, nil
			}
			records = append(records, serviceRecordOf(e))
		case <-ctx.Done():
			return nil, at, fmt.Errorf("cannot read the services: %w", ctx.Err())
		}
	}
}

// sameBucket reports whether the bucket, as it is after a read that
// began at st, is the one the read began on: one made again meanwhile may
// or may not be the one read, and the read is not to be used.
func (st bucketState) sameBucket(after bucketState) bool {
	return after.created.IsZero() || after.created.Equal(st.created)
}

// errBucketMadeAgain: the bucket was deleted and made again during a read.
var errBucketMadeAgain = errors.New("the bucket was made again during the read")

// bucketNow is the bucket's last revision (its stream's last sequence)
// and when it was created; zero when they cannot be read.
func bucketNow(ctx context.Context, kv jetstream.KeyValue) bucketState {
	st, err := kv.Status(ctx)
	if err != nil {
		return bucketState{}
	}
	if bs, ok := st.(*jetstream.KeyValueBucketStatus); ok {
		info := bs.StreamInfo()
		return bucketState{rev: info.State.LastSeq, created: info.Created}
	}
	return bucketState{}
}
