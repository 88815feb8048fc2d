package gateway_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/corral-run/corral/bus/gateway"
	"github.com/corral-run/corral/internal/testnode"
	"github.com/corral-run/corral/node"
)

// BenchmarkSSEFanout measures the delivery of events to many SSE clients:
// 100 clients follow process.> on one gateway (each through its own
// ordered consumer of the event stream, with ids) while 1,000 events a
// second are published; each iteration is one event. It reports the
// delivery latency, from publish to the client reading the event:
// p50-ms, p99-ms and max-ms over every event and every client.
func BenchmarkSSEFanout(b *testing.B) {
	const clients, rate = 100, 1000
	s := startSite(b, true, gateway.Config{MaxStreams: clients})
	var wg sync.WaitGroup
	lat := make([][]time.Duration, clients)
	ready := make(chan struct{}, clients)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	want := 0 // set before the publishing starts
	for c := range clients {
		req, _ := http.NewRequestWithContext(ctx, "GET", s.url+"/api/v1/events?subject=process.>", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			b.Fatalf("client %d: %v %v", c, resp, err)
		}
		wg.Go(func() {
			defer resp.Body.Close()
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				line := sc.Text()
				if strings.HasPrefix(line, ": listening") {
					ready <- struct{}{}
					continue
				}
				// data: {"t":<unix ns>,"i":<n>}, read without a JSON decoder:
				// the clients share the machine with the gateway.
				data, ok := strings.CutPrefix(line, `data: {"t":`)
				if !ok {
					continue
				}
				end := strings.IndexByte(data, ',')
				t, err := strconv.ParseInt(data[:max(end, 0)], 10, 64)
				if err != nil {
					continue
				}
				lat[c] = append(lat[c], time.Since(time.Unix(0, t)))
				if len(lat[c]) == want {
					return
				}
			}
		})
	}
	for range clients {
		<-ready
	}
	want = b.N
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if d := time.Until(start.Add(time.Duration(i) * time.Second / rate)); d > 0 {
			time.Sleep(d)
		}
		if err := s.node.Conn.Publish("process.bench.tick", fmt.Appendf(nil, `{"t":%d,"i":%d}`, time.Now().UnixNano(), i)); err != nil {
			b.Fatal(err)
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		b.Fatalf("not every client got the %d events", b.N)
	}
	b.StopTimer()
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(all[len(all)/2]), "p50-ms")
	b.ReportMetric(ms(all[len(all)*99/100]), "p99-ms")
	b.ReportMetric(ms(all[len(all)-1]), "max-ms")
	b.ReportMetric(float64(len(all))/time.Since(start).Seconds(), "deliveries/s")
}

// longSleeper lives through a benchmark.
var longSleeper = node.Definition{Name: "sleeper", Command: "sleep", Args: []string{"600"}, StopTimeout: time.Second}

// siteWith starts node n1 (JetStream on, stats sampled every 5 s, as
// by default) with count processes, and a gateway.
func siteWith(b *testing.B, count int) *site {
	b.Helper()
	n := testnode.Start(b, testnode.StartServer(b, true), testnode.Spec{ID: "n1", JetStream: true,
		Definitions: []node.Definition{longSleeper}, StatsInterval: 5 * time.Second, MaxProcesses: count + 10})
	ctx := context.Background()
	for i := range count {
		if _, err := n.Sup.Spawn(ctx, "sleeper", node.SpawnOptions{}); err != nil {
			b.Fatalf("spawn %d: %v", i, err)
		}
	}
	return startGateway(b, n, gateway.Config{})
}

// BenchmarkDashboardFirstPaint loads the dashboard of a node running
// 1,000 processes in chromium, and reports when, after the navigation
// started, the browser first painted (fcp-ms) and the process table first
// showed the processes (table-ms: a mark the page sets then).
func BenchmarkDashboardFirstPaint(b *testing.B) {
	const count = 1000
	s := siteWith(b, count)
	ctx := browser(b)
	var fcp, table float64
	b.ResetTimer()
	for b.Loop() {
		run(b, ctx, 30*time.Second, "load the dashboard", chromedp.Navigate(s.url+"/"))
		t := value(b, ctx, 30*time.Second, "the table's first paint", chromedp.Poll[float64](
			`(performance.getEntriesByName("corral-processes")[0] || {}).startTime`, chromedp.WithPollingInterval(10*time.Millisecond)))
		rows := value(b, ctx, 10*time.Second, "rows", chromedp.Evaluate[int](`document.querySelectorAll("#processes tbody tr").length`))
		if rows != count {
			b.Fatalf("%d rows, want %d", rows, count)
		}
		table += t
		fcp += value(b, ctx, 10*time.Second, "first contentful paint", chromedp.Evaluate[float64](
			`(performance.getEntriesByName("first-contentful-paint")[0] || {startTime: 0}).startTime`))
	}
	b.ReportMetric(table/float64(b.N), "table-ms")
	b.ReportMetric(fcp/float64(b.N), "fcp-ms")
}
