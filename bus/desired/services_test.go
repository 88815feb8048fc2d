package desired

import (
	"context"
	"encoding/json"
	"log/slog"
	"reflect"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus/embedded"
)

// startBucket starts an embedded NATS server with JetStream on a random
// loopback port and returns a Manager on it, not started but with its
// bucket set, and the desired-state bucket. (internal/testnode has this
// and more, but it links this package: a test here cannot import it.)
func startBucket(t *testing.T) (*Manager, jetstream.KeyValue) {
	t.Helper()
	m := New(startServer(t), Config{NodeID: "n1", Interval: 100 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(m.Stop)
	kv, err := ensureBucket(testContext(t), m.js, jetstream.KeyValueConfig{Bucket: Bucket, History: 1})
	if err != nil {
		t.Fatal(err)
	}
	m.mu.Lock()
	m.kv = kv // as setUp leaves it
	m.mu.Unlock()
	return m, kv
}

// startServer starts an embedded NATS server with JetStream on a random
// loopback port and returns a connection to it.
func startServer(t *testing.T) *nats.Conn {
	t.Helper()
	srv, err := embedded.Start(embedded.Config{Listen: "127.0.0.1:-1", JetStream: true, StoreDir: t.TempDir(),
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	nc, err := srv.Connect("n1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// testContext ends with the test, or after 10 s.
func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// putService writes services.<name> with n instances.
func putService(t *testing.T, kv jetstream.KeyValue, name string, n int) {
	t.Helper()
	data, err := json.Marshal(api.ServiceSpec{Name: name, Process: "sleeper", Instances: n})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(testContext(t), servicePrefix+name, data); err != nil {
		t.Fatal(err)
	}
}

// instances is the reconciler's view: instances by service, nil before
// the services were read.
func instances(m *Manager) map[string]int {
	wanted, ok := m.wanted()
	if !ok {
		return nil
	}
	out := map[string]int{}
	for _, s := range wanted {
		out[s.Name] = s.Instances
	}
	return out
}

// waitForView waits, on the pokes followDesired gives the reconciler on
// every change, until the view holds name with n instances. Nothing
// else takes the pokes: the Manager's run loop is not started.
func waitForView(t *testing.T, m *Manager, name string, n int) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		if got, ok := instances(m)[name]; ok && got == n {
			return
		}
		select {
		case <-m.trigger:
		case <-deadline:
			t.Fatalf("the view holds %v; want %s with %d instances", instances(m), name, n)
		}
	}
}

// A reread that read the bucket before a scale-up, and merges after the
// watch applied it, must not take the count back: the reconciler would
// stop the new instances, and start them again at the next change.
func TestRereadDoesNotUndoAScaleTheWatchApplied(t *testing.T) {
	m, kv := startBucket(t)
	putService(t, kv, "web", 1)
	m.wg.Go(func() { m.followDesired(kv) })
	waitForView(t, m, "web", 1)

	m.beforeRereadMerge = func() {
		putService(t, kv, "web", 3)
		waitForView(t, m, "web", 3)
	}
	m.rereadServices(kv)
	m.beforeRereadMerge = nil

	if got := instances(m)["web"]; got != 3 {
		t.Errorf("after a reread that read 1 instance and a watch that applied 3 since, the view holds %d", got)
	}
	// The next reread reads 3, and the view stays there.
	m.rereadServices(kv)
	if got := instances(m)["web"]; got != 3 {
		t.Errorf("after a second reread, the view holds %d instances, want 3", got)
	}
}

// The reread alone (a watch that stalled) brings the view to what the
// bucket holds: scales, deletions, and a service removed without a trace
// (its deletion marker purged), which only the bucket's revision before
// the read tells apart from one created after it.
func TestRereadRescuesAStalledWatch(t *testing.T) {
	m, kv := startBucket(t)
	ctx := testContext(t)
	reread := func(want map[string]int, after string) {
		t.Helper()
		m.rereadServices(kv)
		if got := instances(m); !reflect.DeepEqual(got, want) {
			t.Fatalf("after %s and a reread, the view holds %v, want %v", after, got, want)
		}
	}
	putService(t, kv, "web", 2)
	reread(map[string]int{"web": 2}, "web applied")
	putService(t, kv, "api", 1)
	putService(t, kv, "web", 5)
	reread(map[string]int{"web": 5, "api": 1}, "api applied and web scaled")
	if err := kv.Delete(ctx, servicePrefix+"api"); err != nil {
		t.Fatal(err)
	}
	reread(map[string]int{"web": 5}, "api deleted")
	if err := kv.Delete(ctx, servicePrefix+"web"); err != nil {
		t.Fatal(err)
	}
	if err := kv.PurgeDeletes(ctx, jetstream.DeleteMarkersOlderThan(-1)); err != nil {
		t.Fatal(err)
	}
	reread(map[string]int{}, "web deleted and its deletion purged")
}

// The merge by revision, with the sources in every order that matters.
func TestServiceViewNeverGoesBack(t *testing.T) {
	put := func(name string, n int, rev uint64) serviceRecord {
		return serviceRecord{name: name, rev: rev, spec: api.ServiceSpec{Name: name, Instances: n}}
	}
	del := func(name string, rev uint64) serviceRecord { return serviceRecord{name: name, rev: rev, deleted: true} }
	// A step is a read of the whole bucket (a reread, or a watch's current
	// values) that began at revision asOf, or one change a watch delivered.
	type step func(*serviceView)
	first, again := time.Unix(1000, 0), time.Unix(2000, 0) // when the bucket was created, then made again
	read := func(asOf uint64, rs ...serviceRecord) step {
		return func(v *serviceView) { v.applySnapshot(rs, bucketState{rev: asOf, created: first}) }
	}
	readAgain := func(asOf uint64, rs ...serviceRecord) step {
		return func(v *serviceView) { v.applySnapshot(rs, bucketState{rev: asOf, created: again}) }
	}
	watched := func(r serviceRecord) step { return func(v *serviceView) { v.apply(r) } }

	for _, tc := range []struct {
		name  string
		steps []step
		want  map[string]int // nil: not read yet
	}{
		{"nothing read yet", nil, nil},
		{"an empty bucket read", []step{read(0)}, map[string]int{}},
		{"a reread that began before a scale the watch applied",
			[]step{read(10, put("web", 1, 5)), watched(put("web", 3, 11)), read(10, put("web", 1, 5))},
			map[string]int{"web": 3}},
		{"a watch that lags behind a reread",
			[]step{read(20, put("web", 3, 15)), watched(put("web", 1, 5)), watched(put("web", 3, 15))},
			map[string]int{"web": 3}},
		{"a service created after the reread began",
			[]step{read(10), watched(put("api", 2, 12)), read(10)},
			map[string]int{"api": 2}},
		{"a deletion the reread began before",
			[]step{read(10, put("web", 1, 5)), watched(del("web", 12)), read(10, put("web", 1, 5))},
			map[string]int{}},
		{"a lagging watch after a reread saw a deletion",
			[]step{read(20, del("web", 12)), watched(put("web", 1, 5))},
			map[string]int{}},
		{"a service removed without a trace",
			[]step{read(10, put("web", 1, 5), put("api", 1, 6)), read(20, put("api", 1, 6))},
			map[string]int{"api": 1}},
		{"a lagging watch after a reread found a service removed without a trace",
			[]step{read(10, put("web", 1, 5)), read(20), watched(put("web", 1, 5)), watched(put("web", 2, 8))},
			map[string]int{}},
		{"a service created again after a deletion",
			[]step{read(10, put("web", 1, 5)), watched(del("web", 12)), read(20), watched(put("web", 4, 21))},
			map[string]int{"web": 4}},
		{"a read that does not know its revision deletes nothing by absence",
			[]step{read(10, put("web", 1, 5)), read(0)},
			map[string]int{"web": 1}},
		{"a bucket deleted and made again, its revisions from 1 again",
			[]step{read(50, put("web", 1, 45)), watched(del("old", 48)), readAgain(1, put("api", 2, 1)), watched(put("api", 3, 2))},
			map[string]int{"api": 3}},
		{"a read of the bucket before it was made again, merged late",
			[]step{readAgain(2, put("api", 2, 1)), read(50, put("web", 1, 45))},
			map[string]int{"api": 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var v serviceView
			for _, s := range tc.steps {
				s(&v)
			}
			var got map[string]int
			if v.specs != nil {
				got = map[string]int{}
				for name, s := range v.specs {
					got[name] = s.Instances
				}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("the view holds %v, want %v", got, tc.want)
			}
		})
	}
}

// The view made empty by a bucket made again empty is a change: the
// reconciler is poked to stop what no longer is wanted.
func TestABucketMadeAgainEmptyIsAChange(t *testing.T) {
	var v serviceView
	v.applySnapshot([]serviceRecord{{name: "web", rev: 5, spec: api.ServiceSpec{Name: "web", Instances: 1}}},
		bucketState{rev: 10, created: time.Unix(1000, 0)})
	if changed := v.applySnapshot(nil, bucketState{rev: 0, created: time.Unix(2000, 0)}); !changed || len(v.specs) != 0 {
		t.Errorf("an empty bucket made again: changed %v, view %v; want true, empty", changed, v.specs)
	}
}

// A change a node writes (scale, delete, apply) is in its own view at
// once, whatever its watch (here, none runs): its reconciler never acts on
// the state before it.
func TestAChangeIsInTheWritersViewAtOnce(t *testing.T) {
	m, kv := startBucket(t)
	ctx := testContext(t)
	putService(t, kv, "web", 2)
	m.rereadServices(kv)
	if _, err := m.Scale(ctx, api.ScaleRequest{Service: "web", Instances: 5}); err != nil {
		t.Fatal(err)
	}
	if got := instances(m)["web"]; got != 5 {
		t.Errorf("right after the scale the writer's view holds %d instances, want 5", got)
	}
	if err := m.Delete(ctx, api.DeleteRequest{Kind: "service", Name: "web"}); err != nil {
		t.Fatal(err)
	}
	if _, ok := instances(m)["web"]; ok {
		t.Errorf("right after the deletion the writer's view holds %v", instances(m))
	}
	if _, err := m.Apply(ctx, []byte("[services.api]\nprocess = \"sleeper\"\ninstances = 3\n")); err != nil {
		t.Fatal(err)
	}
	if got := instances(m)["api"]; got != 3 {
		t.Errorf("right after the apply the writer's view holds %d instances of api, want 3", got)
	}
}

// A pass acts only on a view that is not behind the bucket: when its
// watch lags (here none runs), behind reads the services again before
// the pass places or stops anything, and says so when they differ from
// what the pass read. A view that is current costs no read; a bucket that
// cannot be asked leaves the view as it is (the pass acts on it); a
// change elsewhere in the bucket (a definition) costs a read, and the
// pass goes on.
func TestAPassCatchesUpWithALaggingWatch(t *testing.T) {
	m, kv := startBucket(t)
	ctx := testContext(t)
	reads := 0
	m.beforeRereadMerge = func() { reads++ }
	behind := func(ctx context.Context) bool { // as a pass asks it
		wanted, asOf, _ := m.wantedAsOf()
		return m.behind(ctx, wanted, asOf)
	}
	putService(t, kv, "web", 2)
	m.rereadServices(kv)
	reads = 0
	if behind(ctx) || reads != 0 {
		t.Fatalf("a view just read was taken for behind (%d reads)", reads)
	}

	if err := kv.Delete(ctx, servicePrefix+"web"); err != nil {
		t.Fatal(err)
	}
	gone, cancel := context.WithCancel(ctx)
	cancel()
	if behind(gone) || instances(m)["web"] != 2 {
		t.Fatalf("with the bucket out of reach, behind read the services again: view %v", instances(m))
	}
	if !behind(ctx) {
		t.Fatal("a view behind the bucket (web deleted) was not read again, or not said to differ")
	}
	if _, ok := instances(m)["web"]; ok {
		t.Fatalf("after catching up, the view still holds web: %v", instances(m))
	}
	reads = 0
	if behind(ctx) || reads != 0 {
		t.Fatalf("a view that caught up was read again (%d reads)", reads)
	}

	if _, err := kv.Put(ctx, definitionPrefix+"enc", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if behind(ctx) || reads != 1 {
		t.Fatalf("after a definition's change: %d reads, want 1, and the pass to go on", reads)
	}
	if behind(ctx) || reads != 1 {
		t.Fatalf("the view read after a definition's change was read again (%d reads)", reads)
	}
}
