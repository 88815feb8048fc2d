package daemon_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus/metrics/metricstest"
	"github.com/corral-run/corral/internal/await"
	"github.com/corral-run/corral/internal/testchild"
	"github.com/corral-run/corral/node"
)

// BenchmarkMetrics1000 scrapes /metrics, over HTTP as Prometheus does, on
// a node that runs 1,000 processes whose trees it samples; each iteration
// is one scrape (read whole), so ns/op is the scrape's time and ms/scrape
// says it in milliseconds.
func BenchmarkMetrics1000(b *testing.B) {
	const count = 1000
	d := startDaemon(b, parseConfig(b, fmt.Sprintf(`
[node]
id = "bench"
data_dir = %q
stats_interval = "1s"
max_processes = 1100
[nats]
listen = "127.0.0.1:0"
jetstream = false
[http]
listen = "127.0.0.1:0"
[processes.sleeper]
command = "sleep"
args = ["600"]
heartbeat_timeout = "0s"
stop_timeout = "1s"
`, testchild.ShortTempDir(b))), quiet)
	ctx := context.Background()
	for i := range count {
		if _, err := d.Supervisor().Spawn(ctx, "sleeper", node.SpawnOptions{}); err != nil {
			b.Fatalf("spawn %d: %v", i, err)
		}
	}
	url := d.HTTPURL() + "/metrics"
	scrape := func() []byte {
		resp, err := http.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != 200 {
			b.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
		}
		return body
	}
	// Every process sampled once: their figures are in the scrape.
	await.Until(b, time.Minute, "every process sampled", func() bool {
		n := 0
		for _, p := range d.Supervisor().GetAll() {
			if p.Stats != nil && p.Status == api.StatusRunning {
				n++
			}
		}
		return n == count
	})
	f := metricstest.Parse(b, bytes.NewReader(scrape()))
	if got, _ := f.Value("corral_processes", "definition", "sleeper", "status", "running"); got != count {
		b.Fatalf("corral_processes = %v, want %d", got, count)
	}
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		scrape()
	}
	b.ReportMetric(float64(time.Since(start).Microseconds())/1000/float64(b.N), "ms/scrape")
}
