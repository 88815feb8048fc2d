package metrics_test

import (
	"errors"
	"fmt"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus/metrics"
	"github.com/corral-run/corral/bus/metrics/metricstest"
	"github.com/corral-run/corral/client/wire"
	"github.com/corral-run/corral/internal/testnode"
	"github.com/corral-run/corral/node"
)

// next is the Reporter the counting one hands on to: it accepts events at
// once, or refuses them all.
type next struct {
	mu      sync.Mutex
	got     []node.Report
	refuse  bool
	forgot  []string
	watched []string
}

func (n *next) Publish(r node.Report) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.refuse {
		return errors.New("closed")
	}
	n.got = append(n.got, r)
	if r.Done != nil {
		r.Done(nil)
	}
	return nil
}

func (n *next) Forget(id string) { n.forgot = append(n.forgot, id) }
func (n *next) Watch(id string)  { n.watched = append(n.watched, id) }

func scrape(t *testing.T, rep *metrics.Reporter, st metrics.State) metricstest.Families {
	t.Helper()
	rec := httptest.NewRecorder()
	metrics.Handler(metrics.NewRegistry(rep, st), nil).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("GET /metrics: %d %s", rec.Code, rec.Body)
	}
	return metricstest.Parse(t, rec.Body)
}

func TestReporterCountsAndHandsOn(t *testing.T) {
	n := &next{}
	rep := metrics.NewReporter(n)
	pub := func(r node.Report) {
		t.Helper()
		if err := rep.Publish(r); err != nil {
			t.Fatal(err)
		}
	}
	pub(node.Report{Kind: node.KindSpawned, Name: "enc"})
	pub(node.Report{Kind: node.KindSpawned, Name: "enc"})
	pub(node.Report{Kind: node.KindCrashed, Name: "enc"})
	pub(node.Report{Kind: node.KindRestarted, Name: "enc"})
	pub(node.Report{Kind: node.KindStopped, Name: "tick"})
	pub(node.Report{Kind: node.KindWatchdogKilled, Name: "enc", Payload: api.WatchdogKilled{Reason: api.ReasonHeartbeat}})
	pub(node.Report{Kind: node.KindLimitsExceeded, Name: "enc", Payload: api.LimitsExceeded{Reason: api.ReasonMemory}})
	acked := 0
	for i := range 64 {
		done := func(err error) {
			if err == nil {
				acked++
			}
		}
		if i%2 == 1 {
			done = nil
		}
		pub(node.Report{Kind: node.KindEvent, Name: "enc", Event: "progress", Done: done})
	}
	if len(n.got) != 71 || acked != 32 {
		t.Fatalf("handed on %d reports, %d acked; want 71, 32", len(n.got), acked)
	}
	rep.Forget("proc_x")
	if len(n.forgot) != 1 {
		t.Error("Forget not handed on")
	}
	rep.Watch("proc_y")
	if len(n.watched) != 1 {
		t.Error("Watch not handed on")
	}
	n.refuse = true
	if err := rep.Publish(node.Report{Kind: node.KindEvent, Name: "enc"}); err == nil {
		t.Error("a refusal was not handed back")
	}

	rep.Define("idle")
	f := scrape(t, rep, metrics.State{})
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"corral_spawns_total", []string{"definition", "enc"}, 2},
		{"corral_crashes_total", []string{"definition", "enc"}, 1},
		{"corral_restarts_total", []string{"definition", "enc"}, 1},
		{"corral_stops_total", []string{"definition", "tick"}, 1},
		{"corral_watchdog_kills_total", []string{"definition", "enc", "reason", "heartbeat"}, 1},
		{"corral_limit_kills_total", []string{"definition", "enc", "reason", "maxMemoryMb"}, 1},
		{"corral_reports_total", []string{"kind", "event"}, 65},
		{"corral_reports_total", []string{"kind", "spawned"}, 2},
		{"corral_relay_errors_total", nil, 1},
		{"corral_relay_latency_seconds", nil, 4}, // one event in 16 of 64
		{"corral_spawns_total", []string{"definition", "idle"}, 0},
		{"corral_limit_kills_total", []string{"definition", "idle", "reason", "maxCpuPercent"}, 0},
	} {
		if got, ok := f.Value(c.name, c.labels...); !ok || got != c.want {
			t.Errorf("%s%v = %v (%v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	// The process's own figures come along.
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes", "process_cpu_seconds_total"} {
		if f[name] == nil {
			t.Errorf("no %s", name)
		}
	}
}

type relayState struct{}

func (relayState) Dropped() uint64   { return 2 }
func (relayState) StorePending() int { return 3 }
func (relayState) Backlog() int      { return 4 }
func (relayState) Durable() bool     { return true }

// State is read at scrape time; per-process series are by definition and
// instance, whatever the number of processes: those spawned on demand
// are summed.
func TestStateIsBoundedByDefinitionAndInstance(t *testing.T) {
	stats := func(cpu, rss float64) *wire.Stats {
		return &wire.Stats{CPU: wire.CPUStats{Percent: cpu}, Memory: wire.MemoryStats{RSS: rss}}
	}
	var ps []api.ManagedProcess
	for i := range 1000 {
		ps = append(ps, api.ManagedProcess{ID: fmt.Sprintf("proc_%016d", i), Name: "enc", Status: api.StatusRunning, Stats: stats(1, 1000)})
	}
	ps = append(ps,
		api.ManagedProcess{Name: "tick", Instance: "tick/0", Status: api.StatusRunning, Stats: stats(5, 10)},
		api.ManagedProcess{Name: "tick", Instance: "tick/1", Status: api.StatusRunning, Stats: stats(7, 20)},
		api.ManagedProcess{Name: "tick", Status: api.StatusCrashed, Stats: stats(99, 99)},
	)
	srv := testnode.StartServer(t, false)
	nc := testnode.Connect(t, srv.ClientURL())
	f := scrape(t, nil, metrics.State{
		Processes: func() []api.ManagedProcess { return ps },
		Lines: func() node.LineStats {
			return node.LineStats{Acked: 7, Rejected: map[string]uint64{"malformed": 2, "schema_invalid": 1}}
		},
		Connections: func() int { return 12 },
		Relay:       relayState{},
		Conn:        nc,
		Host: func() *api.HostStats {
			return &api.HostStats{CPUPercent: 12.5, MemUsedBytes: 1 << 30, MemTotalBytes: 4 << 30}
		},
		EventStreams: func() int { return 5 },
	})
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"corral_processes", []string{"definition", "enc", "status", "running"}, 1000},
		{"corral_processes", []string{"definition", "tick", "status", "crashed"}, 1},
		{"corral_process_cpu_percent", []string{"definition", "enc", "instance", ""}, 1000},
		{"corral_process_memory_bytes", []string{"definition", "enc", "instance", ""}, 1e6},
		{"corral_process_cpu_percent", []string{"definition", "tick", "instance", "tick/1"}, 7},
		{"corral_events_acked_total", nil, 7},
		{"corral_lines_rejected_total", []string{"reason", "malformed"}, 2},
		{"corral_child_connections", nil, 12},
		{"corral_relay_dropped_total", nil, 2},
		{"corral_durable_store_pending", nil, 3},
		{"corral_relay_backlog", nil, 4},
		{"corral_durable", nil, 1},
		{"corral_nats_connected", nil, 1},
		{"corral_nats_reconnects_total", nil, 0},
		{"corral_host_cpu_percent", nil, 12.5},
		{"corral_host_memory_total_bytes", nil, 4 << 30},
		{"corral_http_event_streams", nil, 5},
	} {
		if got, ok := f.Value(c.name, c.labels...); !ok || got != c.want {
			t.Errorf("%s%v = %v (%v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	// enc (on demand, summed) and tick's two instances; the crashed one
	// has no usage.
	if n := f.Series("corral_process_cpu_percent"); n != 3 {
		t.Errorf("%d CPU series for 1,003 processes, want 3", n)
	}
	nc.Close()
	f = scrape(t, nil, metrics.State{Conn: nc})
	if got, _ := f.Value("corral_nats_connected"); got != 0 {
		t.Errorf("corral_nats_connected = %v on a closed connection", got)
	}
}

// The hot path: what counting adds to relaying an event.
func BenchmarkReporterEvent(b *testing.B) {
	rep := metrics.NewReporter(&discard{})
	r := node.Report{Kind: node.KindEvent, Name: "enc", Event: "progress", Raw: []byte(`{}`)}
	b.ReportAllocs()
	for b.Loop() {
		_ = rep.Publish(r)
	}
}

type discard struct{}

func (discard) Publish(node.Report) error { return nil }

// A scrape of a node with 1,000 processes, without HTTP.
func BenchmarkScrape1000(b *testing.B) {
	var ps []api.ManagedProcess
	for i := range 1000 {
		ps = append(ps, api.ManagedProcess{Name: fmt.Sprintf("def%d", i%10), Status: api.StatusRunning,
			Stats: &wire.Stats{CPU: wire.CPUStats{Percent: 1}, Memory: wire.MemoryStats{RSS: 1 << 20}}, StartedAt: time.Now()})
	}
	h := metrics.Handler(metrics.NewRegistry(metrics.NewReporter(discard{}), metrics.State{Processes: func() []api.ManagedProcess { return ps }}), nil)
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	}
}
