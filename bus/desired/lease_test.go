package desired

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// A holder whose renewal fails while the registry does not answer tries
// again as soon as its attempt ends, each attempt waiting a tenth of the
// lease, and takes its own lease back once the registry answers, before
// the lease expires: the services are not left without a reconciler for a
// lease's time. Once it sees another holder, it looks at the others' pace,
// but while the registry does not answer. A holder renews at a fifth of
// the lease, each attempt waiting as long.
func TestAHolderWhoseRenewalFailedTakesItsLeaseBack(t *testing.T) {
	_, kv := startBucket(t) // any bucket will do: the lease is one key
	const ttl = 10 * time.Second
	a := &elector{nodeID: "a", log: slog.New(slog.DiscardHandler)}
	ctx := testContext(t)
	if !a.campaign(ctx, kv, ttl, never) || !a.isHolder() || a.pace(ttl) != ttl/5 || a.attempt(ttl) != ttl/5 {
		t.Fatalf("a did not take a free lease: holder %v, pace %v, attempts of %v", a.isHolder(), a.pace(ttl), a.attempt(ttl))
	}

	away, cancel := context.WithCancel(ctx)
	cancel() // the registry does not answer
	if a.campaign(away, kv, ttl, never) || a.isHolder() {
		t.Fatal("a renewed its lease with no registry to write to")
	}
	if pace, attempt := a.pace(ttl), a.attempt(ttl); pace != ttl/10 || attempt != ttl/10 {
		t.Errorf("after a renewal that got no answer a looks every %v, waiting %v, want %v (at once after each attempt)", pace, attempt, ttl/10)
	}
	if !a.campaign(ctx, kv, ttl, never) || !a.isHolder() {
		t.Fatal("a did not take its own lease back once the registry answered")
	}

	b := &elector{nodeID: "b", log: slog.New(slog.DiscardHandler)}
	if !b.campaign(ctx, kv, ttl, func(n string) bool { return n == "a" }) {
		t.Fatal("b did not take over the lease of a lost holder")
	}
	if a.campaign(ctx, kv, ttl, never) || a.isHolder() {
		t.Fatal("a renewed a lease b holds")
	}
	if got := a.pace(ttl); got != ttl/2 {
		t.Errorf("with b holding the lease a looks every %v, want %v", got, ttl/2)
	}
	// While the registry does not answer, a looks again as soon as each
	// attempt ends, to take the lease over as soon as it answers should b
	// be lost.
	if a.campaign(away, kv, ttl, never); a.pace(ttl) != ttl/10 {
		t.Errorf("with no answer from the registry a looks every %v, want %v", a.pace(ttl), ttl/10)
	}
	if a.campaign(ctx, kv, ttl, never); a.pace(ttl) != ttl/2 {
		t.Errorf("once the registry answers again (b holds the lease) a looks every %v, want %v", a.pace(ttl), ttl/2)
	}
}

// unreadable is a bucket whose reads get no answer (they would go to a
// replica a partition cut off) while writes, which go to the stream's
// leader, do.
type unreadable struct{ jetstream.KeyValue }

func (unreadable) Get(context.Context, string) (jetstream.KeyValueEntry, error) {
	return nil, context.DeadlineExceeded
}

// A holder whose renewal failed takes its lease back by writing on the
// revision it wrote last, even while reads of the lease get no answer.
func TestALeaseIsTakenBackWithoutAReadThatAnswers(t *testing.T) {
	_, kv := startBucket(t)
	const ttl = 10 * time.Second
	a, ctx := holderWhoseRenewalFailed(t, kv, ttl)
	if !a.campaign(ctx, unreadable{kv}, ttl, never) || !a.isHolder() {
		t.Fatal("a did not take its own lease back while reads of it got no answer")
	}
	if _, err := kv.Get(ctx, LeaseKey); errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatal("no lease in the bucket")
	}
}

// slowBucket is a bucket that answers, but only after delay.
type slowBucket struct {
	jetstream.KeyValue
	delay time.Duration
}

func (b slowBucket) wait(ctx context.Context) error {
	select {
	case <-time.After(b.delay):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b slowBucket) Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error) {
	if err := b.wait(ctx); err != nil {
		return nil, err
	}
	return b.KeyValue.Get(ctx, key)
}

func (b slowBucket) Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error) {
	if err := b.wait(ctx); err != nil {
		return 0, err
	}
	return b.KeyValue.Update(ctx, key, value, rev)
}

// A registry that answers, but more slowly than the short attempts that
// follow a look with no answer, still gives the lease back to its holder:
// every other attempt is long enough.
func TestALeaseIsTakenBackFromASlowRegistry(t *testing.T) {
	_, kv := startBucket(t)
	const ttl = time.Second // attempts of 200 ms, and 100 ms every other one while the registry does not answer
	a, ctx := holderWhoseRenewalFailed(t, kv, ttl)
	slow := slowBucket{kv, 150 * time.Millisecond}
	for range 4 {
		actx, cancel := context.WithTimeout(ctx, a.attempt(ttl))
		a.campaign(actx, slow, ttl, never)
		cancel()
		if a.isHolder() {
			break
		}
	}
	if !a.isHolder() {
		t.Fatal("a never took its lease back from a registry answering in 150 ms (attempts of 100 ms only)")
	}
	if pace, attempt := a.pace(ttl), a.attempt(ttl); pace != ttl/5 || attempt != ttl/5 {
		t.Errorf("the holder again: pace %v, attempts of %v, want %v", pace, attempt, ttl/5)
	}
}

func never(string) bool { return false }

// holderWhoseRenewalFailed is node a, which took a free lease in kv and
// then failed to renew it (no registry to write to), and a context for
// the test.
func holderWhoseRenewalFailed(t *testing.T, kv jetstream.KeyValue, ttl time.Duration) (*elector, context.Context) {
	t.Helper()
	a := &elector{nodeID: "a", log: slog.New(slog.DiscardHandler)}
	ctx := testContext(t)
	if !a.campaign(ctx, kv, ttl, never) {
		t.Fatal("a did not take a free lease")
	}
	away, cancel := context.WithCancel(ctx)
	cancel()
	if a.campaign(away, kv, ttl, never) || a.isHolder() {
		t.Fatal("a renewed its lease with no registry to write to")
	}
	return a, ctx
}

// When the lease's holder is lost, the smallest node alive acts for it at
// once: the pass it asks for is made as the acting reconciler, not
// skipped for want of the lease until its campaign returns (the registry
// may take seconds to answer after a loss; here it never does).
func TestTheNodeActingForALostHolderReconcilesAtOnce(t *testing.T) {
	m, kv := startBucket(t)
	m.cfg.Alive = func() []string { return []string{"n1", "n2"} } // n1 is the smallest
	m.elect.holder = "n9"                                         // the lease's last seen holder
	var leaderAtPokes []bool
	m.poked = func() { leaderAtPokes = append(leaderAtPokes, m.Leader()) }
	away, cancel := context.WithCancel(testContext(t))
	cancel() // the campaign gets no answer
	m.ctx = away
	m.nodesLost(kv, []string{"n9"})
	if len(leaderAtPokes) == 0 || !leaderAtPokes[0] {
		t.Fatalf("the passes asked for on the holder's loss, reconciler or not at each: %v; want the first as the acting reconciler", leaderAtPokes)
	}
}

// When the lease's holder is lost, only the node that acts for it (the
// smallest alive) takes the lease over at once: another that did too
// would reconcile beside the acting node, and both would place the lost
// node's instances (seen in the partition test).
func TestOnlyTheActingNodeTakesALostHoldersLeaseOver(t *testing.T) {
	m1, kv := startBucket(t)
	ctx := testContext(t)
	const ttl = LeaseTTL
	lost := &elector{nodeID: "n9", log: slog.New(slog.DiscardHandler)}
	if !lost.campaign(ctx, kv, ttl, never) {
		t.Fatal("n9 did not take the free lease")
	}
	alive := func() []string { return []string{"n1", "n2"} }
	m1.cfg.Alive = alive
	m2 := New(m1.nc, Config{NodeID: "n2", Interval: m1.cfg.Interval, Alive: alive, Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(m2.Stop)
	m1.markLost("n9")
	m2.markLost("n9")

	m2.campaign(kv)
	if m2.elect.isHolder() {
		t.Fatal("n2, not the smallest node alive, took the lost holder's lease over at once")
	}
	m1.campaign(kv)
	if !m1.elect.isHolder() {
		t.Fatal("n1, the smallest node alive, did not take the lost holder's lease over")
	}

	// n1 is lost in turn, and says nothing of it (it cannot: no reconciler,
	// or cut off): once an acting node would have stopped acting, half a
	// lease after the loss, the lease is anyone's.
	m2.markLost("n1")
	m2.campaign(kv)
	if m2.elect.isHolder() || m2.takesOverHolder() {
		t.Fatal("n2 took (or would campaign every tick to take) the lease of n1, lost a moment ago, over at once")
	}
	m2.mu.Lock()
	m2.lost["n1"] = time.Now().Add(-ttl / 2)
	m2.mu.Unlock()
	if !m2.takesOverHolder() {
		t.Error("n2 does not see that it takes over the lease of the holder it last saw (it would look only every half lease)")
	}
	m2.campaign(kv)
	if !m2.elect.isHolder() {
		t.Fatal("half a lease after the holder's loss, n2 did not take the lease over")
	}
}

// A node acts for a lost holder for at most half a lease: past that,
// another node may hold the lease (takesOver), and two reconcilers would
// place the same instances.
func TestActingLastsHalfALease(t *testing.T) {
	e := &elector{nodeID: "n1", holder: "n9", log: slog.New(slog.DiscardHandler)}
	if !e.act("n9") || !e.holds(LeaseTTL/2) {
		t.Fatal("n1 does not act for the lost holder n9")
	}
	e.mu.Lock()
	e.actingSince = time.Now().Add(-LeaseTTL / 2)
	e.mu.Unlock()
	if e.holds(LeaseTTL / 2) {
		t.Error("n1 still acts half a lease after the loss")
	}
}
