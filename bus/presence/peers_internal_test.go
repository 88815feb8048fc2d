package presence

import (
	"testing"
	"time"

	"github.com/corral-run/corral/bus/registry"
)

// The turns to announce a loss, for every heartbeat interval a node may
// have: each node's turn comes after the node before it has checked and
// its announcement has had lossPropagation to arrive; and the loss is
// announced within three intervals plus half a second by the first three
// in line (the smallest alive node, or the next one or two when the
// smaller ones never heard the lost node or died just after it), at the
// latest check and with a probe that waits its full timeout.
func TestLossTurns(t *testing.T) {
	for _, interval := range []time.Duration{100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
		time.Second, 2 * time.Second, 5 * time.Second} {
		a := &Announcer{interval: interval}
		if escalation < a.checkEvery()+lossPropagation {
			t.Errorf("interval %v: each next node announces %v later, within a check (%v) and the propagation of an announcement (%v)",
				interval, escalation, a.checkEvery(), lossPropagation)
		}
		bound := registry.MissedHeartbeats*interval + 500*time.Millisecond
		for rank := range 3 {
			latest := registry.GoneAfter(interval.Milliseconds()) + time.Duration(rank)*escalation + a.checkEvery() + a.probeTimeout()
			if latest > bound {
				t.Errorf("interval %v: node %d in line announces up to %v after the last heartbeat, past %v", interval, rank, latest, bound)
			}
		}
	}
}

// The watcher checks at the quick pace only while a node is near its time
// or past it, and finds it near at least two rest periods before it.
func TestQuickChecksOnlyNearATime(t *testing.T) {
	const interval = 2 * time.Second
	a := &Announcer{interval: interval, nodeID: "a"}
	a.peers.peers = map[string]*peer{}
	if a.checkPeers() {
		t.Error("near with no other node")
	}
	b := a.peers.get("b")
	b.info.ID, b.info.IntervalMs = "b", interval.Milliseconds()
	gone := registry.GoneAfter(b.info.IntervalMs)
	for _, c := range []struct {
		quiet time.Duration
		near  bool
	}{{0, false}, {interval, false}, {gone - 3*a.restEvery(), false}, {gone - 2*a.restEvery() + time.Millisecond, true},
		{gone + 100*time.Millisecond, true}, {gone + time.Minute, false}} { // past every turn: the rest pace
		b.seen = time.Now().Add(-c.quiet)
		if got := a.checkPeers(); got != c.near {
			t.Errorf("b quiet for %v of %v: near %v, want %v", c.quiet, gone, got, c.near)
		}
	}
	if a.restEvery() <= a.checkEvery() || a.checkEvery() > maxCheckEvery {
		t.Errorf("rest every %v, check every %v", a.restEvery(), a.checkEvery())
	}
}
