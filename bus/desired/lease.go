package desired

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// LeaseKey is the key of the reconciler's lease in the node registry
// (CORRAL_NODES): the bucket whose compare-and-set also decides which node
// announces a loss, so that once a loss is announced the lease can be
// taken over at once.
const LeaseKey = "lease.reconciler"

// lease is the value of the reconciler's lease.
type lease struct {
	Node  string    `json:"node"`
	Since time.Time `json:"since"`
}

// elector holds or seeks the reconciler's lease. Every change of the key
// is a compare-and-set on its revision, so two nodes never both think
// they renewed it; the bucket's TTL ends a lease nobody renews.
type elector struct {
	nodeID string
	log    *slog.Logger

	mu      sync.Mutex
	leader  bool
	rev     uint64
	since   time.Time // leader since
	renewed time.Time // last taken or renewed
	holder  string    // the holder last seen ("" before a look)
	// unanswered: the last look at the lease got no answer (the registry
	// is away: its stream may be electing a leader); misses: how many
	// campaigns in a row ended so.
	unanswered bool
	misses     int
	// acting: the holder was declared lost and this node is the one to
	// take over, while the registry does not answer yet (see act).
	acting      bool
	actingSince time.Time
}

// isActing reports whether this node acts for a lost holder.
func (e *elector) isActing() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.acting
}

// isHolder reports whether this node took or renewed the lease last.
func (e *elector) isHolder() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.leader
}

// pace is how often the node campaigns (from the start of one campaign
// to the next): the holder renews every fifth of the lease, and so does a
// node whose renewal failed while no other holder is known; a node whose
// last look got no answer (the registry is away: its stream may be
// electing a leader) tries again as soon as its attempt ended (attempt),
// so that it takes its own lease back, or a lost holder's over, as soon
// as the registry answers, rather than when the lease expires; the others
// look every half.
func (e *elector) pace(ttl time.Duration) time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case e.unanswered:
		return e.attemptLocked(ttl)
	case e.leader || e.holder == e.nodeID:
		return ttl / 5
	}
	return ttl / 2
}

// attempt is how long one campaign waits for the registry: a fifth of the
// lease, and, while the registry does not answer (its stream may be
// electing a leader), a tenth every other campaign. A request sent before
// the election is never answered: the next one, sent at once, finds the
// new leader (in the partition test, a holder whose renewal failed took
// its lease back 4 s after the registry's election, two of its 2 s
// attempts later). The long ones in between let a registry that answers,
// but slowly, answer.
func (e *elector) attempt(ttl time.Duration) time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.attemptLocked(ttl)
}

func (e *elector) attemptLocked(ttl time.Duration) time.Duration {
	if e.misses%2 == 1 { // misses counts only campaigns with no answer
		return ttl / 10
	}
	return ttl / 5
}

// holds reports whether this node holds the lease, taken or renewed
// within fresh, or acts for a lost holder since less than fresh (after
// which another node may take the lease over: Manager.takesOver).
func (e *elector) holds(fresh time.Duration) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.leader && time.Since(e.renewed) < fresh || e.acting && time.Since(e.actingSince) < fresh
}

// lastHolder is the holder of the lease as this node last saw it.
func (e *elector) lastHolder() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.holder
}

// act makes this node the acting reconciler when the lease's last seen
// holder is lost: the registry, where the lease is taken over, may not
// answer for seconds after a node loss (its stream may have to elect a
// leader), and the lost node's instances should move at once. The node
// the caller chose (the smallest alive, on the side of a majority) acts
// until it takes the lease, or sees another holder, or for at most the
// freshness of a lease.
func (e *elector) act(lost string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.leader || e.holder != lost || lost == "" {
		return false
	}
	e.acting, e.actingSince = true, time.Now()
	e.log.Info("the reconciler's node is lost; acting for it until the lease is taken over", "lost", lost)
	return true
}

func (e *elector) set(leader bool, rev uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case leader && !e.leader:
		e.since = time.Now()
		e.log.Info("this node reconciles the services now (it holds the lease)")
	case !leader && e.leader:
		e.log.Warn("this node no longer holds the reconciler's lease")
	}
	e.leader, e.rev = leader, rev // a lost lease keeps its last revision, to take it back on
	if leader {
		e.renewed, e.holder, e.acting, e.unanswered = time.Now(), e.nodeID, false, false
	}
}

// campaign renews the lease when this node holds it, else tries to take
// it: when nobody holds it, when it is this node's own (from before a
// failed renewal: first on the revision it wrote last, without reading;
// or from before a restart), when takeOver says so of its holder (one the
// cluster has just declared lost: Manager.takesOver), or when its holder
// has not renewed it for ttl (judged by the server's timestamp of the
// record). It reports whether this node has just become the leader.
func (e *elector) campaign(ctx context.Context, kv jetstream.KeyValue, ttl time.Duration, takeOver func(string) bool) bool {
	defer func() {
		e.mu.Lock()
		if e.unanswered {
			e.misses++
		} else {
			e.misses = 0
		}
		e.mu.Unlock()
	}()
	e.mu.Lock()
	leader, rev, since, mine := e.leader, e.rev, e.since, e.holder == e.nodeID
	e.mu.Unlock()
	if since.IsZero() {
		since = time.Now()
	}
	val, _ := json.Marshal(lease{Node: e.nodeID, Since: since})
	if (leader || mine) && rev != 0 {
		// Renew, or take back a lease whose renewal failed, on the
		// revision this node wrote last: a write goes to the stream's
		// leader, where a read may wait on a replica the network cut off.
		if nrev, err := kv.Update(ctx, LeaseKey, val, rev); err == nil {
			e.set(true, nrev)
			return !leader
		}
		if leader {
			e.set(false, rev) // below it may find the lease still its own
		}
	}
	// Look before writing: most looks find a holder alive, and a read
	// costs the registry less than a refused write.
	entry, err := kv.Get(ctx, LeaseKey)
	e.mu.Lock()
	e.unanswered = err != nil && !errors.Is(err, jetstream.ErrKeyNotFound)
	e.mu.Unlock()
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		nrev, err := kv.Create(ctx, LeaseKey, val)
		if err != nil {
			e.noAnswer(err)
			return false // another node was first, or the registry is away
		}
		e.set(true, nrev)
		return true
	}
	if err != nil {
		return false
	}
	var cur lease
	_ = json.Unmarshal(entry.Value(), &cur)
	e.mu.Lock()
	e.holder = cur.Node
	if cur.Node == e.nodeID {
		e.rev = entry.Revision() // its own: the revision to write on
	}
	e.mu.Unlock()
	over := cur.Node != e.nodeID && takeOver(cur.Node)
	if cur.Node != e.nodeID && !over {
		e.mu.Lock()
		e.acting = false // another holder is alive
		e.mu.Unlock()
	}
	switch {
	case cur.Node == e.nodeID:
	case over:
		e.log.Info("the reconciler's node is lost; taking its lease over", "lost", cur.Node)
	case time.Since(entry.Created()) > ttl:
		e.log.Info("the reconciler's lease expired; taking it over", "holder", cur.Node)
	default:
		return false
	}
	nrev, err := kv.Update(ctx, LeaseKey, val, entry.Revision())
	if err != nil {
		e.noAnswer(err)
		return false
	}
	e.set(true, nrev)
	return true
}

// noAnswer notes a write of the lease that got no answer (it may have
// been written): the node looks again at the holder's pace.
func (e *elector) noAnswer(err error) {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) {
		e.mu.Lock()
		e.unanswered = true
		e.mu.Unlock()
	}
}

// resign gives the lease up (the node is stopping), so that another node
// need not wait for it to expire.
func (e *elector) resign(ctx context.Context, kv jetstream.KeyValue) {
	e.mu.Lock()
	leader, rev := e.leader, e.rev
	e.leader = false
	e.mu.Unlock()
	if leader {
		_ = kv.Delete(ctx, LeaseKey, jetstream.LastRevision(rev))
	}
}

// holder is the node that holds the lease now, "" when none does.
func holder(ctx context.Context, kv jetstream.KeyValue) string {
	entry, err := kv.Get(ctx, LeaseKey)
	if err != nil {
		return ""
	}
	var cur lease
	_ = json.Unmarshal(entry.Value(), &cur)
	return cur.Node
}
