package service_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/corral-run/corral/bus/control"
	"github.com/corral-run/corral/internal/testnode"
	"github.com/corral-run/corral/node"
)

// How long a line takes from the child's write to a follower on another
// connection: the child (cat) writes the line the benchmark hands it, the
// node reads it from the FIFO, writes it to the log and publishes it on
// corral.logs.<id>, the follower's Control.Follow hands it over. One
// line at a time; ns/op is the latency, and p50/p99/max are reported.
func BenchmarkFollowLatency(b *testing.B) {
	e := newEchoer(b, "echo")
	n := testnode.Start(b, testnode.StartServer(b, false), testnode.Spec{ID: "n1", Definitions: []node.Definition{e.def}})
	mp := testnode.Spawn(b, n, "echo")
	w := e.open(b)
	ctl := control.New(testnode.Connect(b, n.URL))
	lines := make(chan string, 1024)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		var l control.Lines
		_, _ = ctl.Follow(ctx, mp.ID, control.FollowOptions{Tail: 1}, func(o control.Output) error {
			for _, line := range strings.SplitAfter(string(l.Add(o.Data)), "\n") {
				if line != "" {
					lines <- line
				}
			}
			return nil
		})
	}()
	defer func() { cancel(); <-done }()
	for line := <-lines; line != "ready\n"; line = <-lines {
	}
	var took []time.Duration
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		want := fmt.Sprintf("line %d\n", i)
		start := time.Now()
		if _, err := w.WriteString(want); err != nil {
			b.Fatal(err)
		}
		if got := <-lines; got != want {
			b.Fatalf("followed %q, want %q", got, want)
		}
		took = append(took, time.Since(start))
	}
	b.StopTimer()
	reportLatency(b, took)
}

// How long logs -f takes to show its first line: from Control.Follow's
// call (subscribe, ask the node, which has its log goroutine read the
// tail) to the tail in hand.
func BenchmarkFollowFirstLine(b *testing.B) {
	e := newEchoer(b, "echo")
	n := testnode.Start(b, testnode.StartServer(b, false), testnode.Spec{ID: "n1", Definitions: []node.Definition{e.def}})
	mp := testnode.Spawn(b, n, "echo")
	e.open(b)
	ctl := control.New(testnode.Connect(b, n.URL))
	var took []time.Duration
	for b.Loop() {
		ctx, cancel := context.WithCancel(context.Background())
		start := time.Now()
		_, err := ctl.Follow(ctx, mp.ID, control.FollowOptions{Tail: 10}, func(o control.Output) error {
			took = append(took, time.Since(start))
			cancel() // the first line is here: enough
			return nil
		})
		cancel()
		if err != nil && ctx.Err() == nil {
			b.Fatal(err)
		}
	}
	reportLatency(b, took)
}

func reportLatency(b *testing.B, took []time.Duration) {
	if len(took) == 0 {
		return
	}
	slices.Sort(took)
	at := func(q float64) time.Duration { return took[min(len(took)-1, int(q*float64(len(took))))] }
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(at(0.5)), "p50-ms")
	b.ReportMetric(ms(at(0.99)), "p99-ms")
	b.ReportMetric(ms(took[len(took)-1]), "max-ms")
	b.Logf("%d lines: p50 %v, p99 %v, max %v", len(took), at(0.5), at(0.99), took[len(took)-1])
}
