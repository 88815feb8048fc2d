package node

import (
	"testing"
	"time"
)

// A process registered while a round is due no later than it costs no
// new round (a round walks every process); one due sooner, or registered
// while a round runs (which may have missed it), makes the loop look
// again.
func TestASpawnCostsARoundOnlyWhenDueSooner(t *testing.T) {
	sm := &sampler{wake: make(chan struct{}, 1)}
	woken := func() bool {
		select {
		case <-sm.wake:
			return true
		default:
			return false
		}
	}
	due := time.Now().Add(5 * time.Second)
	sm.next.Store(due.UnixNano())
	for _, tc := range []struct {
		name string
		at   time.Time
		want bool
	}{
		{"on the round's tick", due, false},
		{"after it", due.Add(5 * time.Second), false},
		{"before it", due.Add(-time.Second), true},
	} {
		sm.dueBy(tc.at)
		if got := woken(); got != tc.want {
			t.Errorf("a process due %s: woke the loop %v, want %v", tc.name, got, tc.want)
		}
	}
	sm.next.Store(0) // a round runs
	sm.dueBy(due.Add(time.Minute))
	if !woken() {
		t.Error("a process registered during a round did not wake the loop")
	}
}
