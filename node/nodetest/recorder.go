// Package nodetest helps test what uses package node: a Recorder is a
// node.Reporter that keeps every report for the test to wait on.
package nodetest

import (
	"fmt"
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

// Output is a node.LogSink that keeps the output it is handed, and checks
// that it comes in order, without gap: each call must begin where the
// last one ended (the first may begin anywhere). Safe for concurrent use.
type Output struct {
	mu      sync.Mutex
	data    []byte
	start   int64 // offset of data[0]
	calls   int
	gap     string // the first gap or overlap seen
	changed chan struct{}
}

// NewOutput returns an empty Output.
func NewOutput() *Output { return &Output{changed: make(chan struct{}), start: -1} }

var _ node.LogSink = (*Output)(nil)

// LogOutput implements node.LogSink.
func (o *Output) LogOutput(data []byte, _, offset int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.start < 0 {
		o.start = offset
	} else if end := o.start + int64(len(o.data)); offset != end && o.gap == "" {
		o.gap = fmt.Sprintf("output at offset %d after output that ended at %d", offset, end)
	}
	o.data = append(o.data, data...)
	o.calls++
	close(o.changed)
	o.changed = make(chan struct{})
}

// Got returns what was handed so far, the offset it begins at (-1 before
// anything came), how many calls brought it, and the first gap or overlap
// between two calls ("" when there was none).
func (o *Output) Got() (data []byte, start int64, calls int, gap string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]byte(nil), o.data...), o.start, o.calls, o.gap
}

// WaitFor waits until what was handed holds want, failing the test after
// within.
func (o *Output) WaitFor(tb testing.TB, within time.Duration, want func(data []byte) bool) []byte {
	tb.Helper()
	deadline := time.After(within)
	for {
		o.mu.Lock()
		data, changed := o.data, o.changed
		ok := want(data)
		o.mu.Unlock()
		if ok {
			return append([]byte(nil), data...)
		}
		select {
		case <-changed:
		case <-deadline:
			tb.Fatalf("the output handed over after %v does not hold what was awaited:\n%.2000s", within, data)
		}
	}
}
