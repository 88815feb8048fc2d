// Package nodetest helps test what uses package node: a Recorder is a
// node.Reporter that keeps every report for the test to wait on.
package nodetest

import (
	"sync"
	"testing"
	"time"

	"github.com/corral-run/corral/node"
)

// Recorder is a node.Reporter that keeps every report, accepting each at
// once (a report's Done is called with nil: "stored"), unless Fail was
// set. Safe for concurrent use.
type Recorder struct {
	mu      sync.Mutex
	reports []node.Report
	times   []time.Time
	changed chan struct{}
	fail    error
}

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder { return &Recorder{changed: make(chan struct{})} }

var _ node.Reporter = (*Recorder)(nil)

// Publish implements node.Reporter.
func (r *Recorder) Publish(rep node.Report) error {
	if rep.Raw != nil {
		rep.Raw = append([]byte(nil), rep.Raw...) // only valid during the call
	}
	r.mu.Lock()
	if r.fail != nil {
		err := r.fail
		r.mu.Unlock()
		return err
	}
	r.reports = append(r.reports, rep)
	r.times = append(r.times, time.Now())
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
	if rep.Done != nil {
		rep.Done(nil)
	}
	return nil
}

// Fail makes Publish refuse every report from now on with err (nil
// accepts them again), as a relay that cannot hand them on would.
func (r *Recorder) Fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fail = err
}

// Wait returns the first report of kind about process id (any process
// when id is empty), waiting up to 10 s.
func (r *Recorder) Wait(tb testing.TB, kind node.Kind, id string) node.Report {
	tb.Helper()
	return r.WaitFor(tb, 10*time.Second, func(rep node.Report) bool {
		return rep.Kind == kind && (id == "" || rep.ProcessID == id)
	})
}

// WaitFor returns the first report that match accepts, waiting up to
// within.
func (r *Recorder) WaitFor(tb testing.TB, within time.Duration, match func(node.Report) bool) node.Report {
	tb.Helper()
	deadline := time.After(within)
	for {
		r.mu.Lock()
		for _, rep := range r.reports {
			if match(rep) {
				r.mu.Unlock()
				return rep
			}
		}
		ch := r.changed
		r.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			tb.Fatalf("no matching report within %v", within)
		}
	}
}

// WaitN waits until there are n reports of kind (of any process).
func (r *Recorder) WaitN(tb testing.TB, kind node.Kind, n int, within time.Duration) []node.Report {
	tb.Helper()
	deadline := time.After(within)
	for {
		reps, _ := r.All(kind)
		r.mu.Lock()
		ch := r.changed
		r.mu.Unlock()
		if len(reps) >= n {
			return reps
		}
		select {
		case <-ch:
		case <-deadline:
			tb.Fatalf("%d reports of kind %d within %s, want %d", len(reps), kind, within, n)
		}
	}
}

// All returns the reports of one kind (of any process), in the order
// published, with the times they were.
func (r *Recorder) All(kind node.Kind) ([]node.Report, []time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var reps []node.Report
	var times []time.Time
	for i, rep := range r.reports {
		if rep.Kind == kind {
			reps = append(reps, rep)
			times = append(times, r.times[i])
		}
	}
	return reps, times
}

// Of returns the reports of kind about process id, in the order published.
func (r *Recorder) Of(kind node.Kind, id string) []node.Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []node.Report
	for _, rep := range r.reports {
		if rep.Kind == kind && rep.ProcessID == id {
			out = append(out, rep)
		}
	}
	return out
}

// Count is len(Of(kind, id)).
func (r *Recorder) Count(kind node.Kind, id string) int { return len(r.Of(kind, id)) }
