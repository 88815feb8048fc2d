package daemon_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus/gateway"
	"github.com/corral-run/corral/bus/metrics/metricstest"
	"github.com/corral-run/corral/internal/await"
	"github.com/corral-run/corral/internal/testchild"
	"github.com/corral-run/corral/node"
)

// startHTTPNode runs a whole node with JetStream and its HTTP gateway on
// a free port; its definition runs this test binary as a proxy child.
func startHTTPNode(t *testing.T, ctrl *testchild.Ctrl) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	env := ctrl.Env()
	d := startDaemon(t, parseConfig(t, fmt.Sprintf(`
[node]
id = "n1"
data_dir = %q
stats_interval = "100ms"
heartbeat_interval = "200ms"
[nats]
listen = "127.0.0.1:0"
[http]
listen = "127.0.0.1:0"
[processes.encoder]
command = %q
stop_timeout = "2s"
env = { %s = %q, %s = %q }
[processes.encoder.events.progress]
type = "object"
required = ["percent"]
properties = { percent = { type = "number" } }
`, testchild.ShortTempDir(t), exe, testchild.EnvRole, env[testchild.EnvRole], testchild.EnvCtrl, env[testchild.EnvCtrl])), slog.LevelWarn)
	if d.HTTPURL() == "" {
		t.Fatal("no HTTP gateway")
	}
	return d.HTTPURL()
}

func httpGet(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// A node serves its gateway: ready, the API on its bus, and metrics of
// every family, as Prometheus parses them.
func TestNodeServesGatewayAndMetrics(t *testing.T) {
	ctrl := testchild.NewCtrl(t)
	base := startHTTPNode(t, ctrl)

	code, body := httpGet(t, base+"/readyz")
	var rd gateway.Readiness
	if code != 200 || json.Unmarshal(body, &rd) != nil || !rd.Ready || len(rd.Checks) != 5 {
		t.Fatalf("readyz: %d %s", code, body)
	}

	resp, err := http.Post(base+"/api/v1/processes", "application/json", strings.NewReader(`{"name":"encoder"}`))
	if err != nil {
		t.Fatal(err)
	}
	var mp api.ManagedProcess
	if err := json.NewDecoder(resp.Body).Decode(&mp); err != nil || resp.StatusCode != 201 {
		t.Fatalf("spawn: %d %v", resp.StatusCode, err)
	}
	resp.Body.Close()
	peer := ctrl.Accept()
	line := func(typ, extra string) string {
		return fmt.Sprintf(`{"type":%q,"processId":%q,"timestamp":1%s}`, typ, mp.ID, extra)
	}
	peer.Send(line("connected", ""))
	for i := range 20 {
		peer.Send(line("event", fmt.Sprintf(`,"event":"progress","data":{"percent":%d},"id":%d`, i, i)))
		if got := peer.ReadLine(); got != fmt.Sprintf(`{"type":"ack","id":%d}`, i) {
			t.Fatalf("ack: %s", got)
		}
	}
	peer.Send(line("event", `,"event":"progress","data":{"percent":"lots"},"id":"bad"`))
	if got := peer.ReadLine(); !strings.Contains(got, "schema_invalid") {
		t.Fatalf("answer to a bad event: %s", got)
	}

	var f metricstest.Families
	await.Until(t, 10*time.Second, "per-process and host figures", func() bool {
		code, body := httpGet(t, base+"/metrics")
		if code != 200 {
			t.Fatalf("metrics: %d %s", code, body)
		}
		f = metricstest.Parse(t, strings.NewReader(string(body)))
		_, cpu := f.Value("corral_process_cpu_percent", "definition", "encoder", "instance", "")
		_, host := f.Value("corral_host_cpu_percent")
		return cpu && host
	})
	for _, fam := range []string{
		"corral_processes", "corral_spawns_total", "corral_restarts_total", "corral_crashes_total", "corral_stops_total",
		"corral_watchdog_kills_total", "corral_limit_kills_total", "corral_reports_total", "corral_events_acked_total",
		"corral_lines_rejected_total", "corral_relay_latency_seconds", "corral_child_connections", "corral_host_cpu_percent",
		"corral_host_memory_used_bytes", "corral_nats_connected", "corral_nats_reconnects_total", "corral_durable_store_pending",
		"corral_relay_backlog", "corral_relay_dropped_total", "corral_process_cpu_percent", "corral_process_memory_bytes",
		"corral_http_event_streams", "process_cpu_seconds_total", "process_resident_memory_bytes", "go_goroutines",
	} {
		if f[fam] == nil {
			t.Errorf("no family %s", fam)
		}
	}
	for _, c := range []struct {
		name   string
		labels []string
		min    float64
	}{
		{"corral_processes", []string{"definition", "encoder", "status", "running"}, 1},
		{"corral_spawns_total", []string{"definition", "encoder"}, 1},
		{"corral_reports_total", []string{"kind", "event"}, 20},
		{"corral_events_acked_total", nil, 20},
		{"corral_lines_rejected_total", []string{"reason", "schema_invalid"}, 1},
		{"corral_relay_latency_seconds", nil, 1},
		{"corral_child_connections", nil, 1},
		{"corral_nats_connected", nil, 1},
		{"corral_durable", nil, 1},
		{"corral_process_memory_bytes", []string{"definition", "encoder", "instance", ""}, 1},
	} {
		if got, ok := f.Value(c.name, c.labels...); !ok || got < c.min {
			t.Errorf("%s%v = %v (%v), want at least %v", c.name, c.labels, got, ok, c.min)
		}
	}
}

// A node that shuts down says so on /readyz while it stops its children,
// before its gateway closes.
func TestReadyzSaysShuttingDown(t *testing.T) {
	dir := testchild.ShortTempDir(t)
	trapped := filepath.Join(dir, "trapped")
	d := startDaemon(t, parseConfig(t, fmt.Sprintf(`
[node]
id = "n1"
data_dir = %q
[nats]
listen = "127.0.0.1:0"
jetstream = false
[http]
listen = "127.0.0.1:0"
[processes.stubborn]
command = "sh"
args = ["-c", "trap '' TERM; touch %s; while :; do sleep 0.1; done"]
stop_timeout = "3s"
`, dir, trapped)), slog.LevelWarn)
	if _, err := d.Supervisor().Spawn(t.Context(), "stubborn", node.SpawnOptions{}); err != nil {
		t.Fatal(err)
	}
	// The shell ignores SIGTERM from now on: the stop, and so the
	// shutdown, lasts its stop timeout. (A SIGTERM before the trap ended
	// it at once, and the gateway with it.)
	await.Until(t, 10*time.Second, "the child to ignore SIGTERM", func() bool {
		_, err := os.Stat(trapped)
		return err == nil
	})
	base := d.HTTPURL()
	closed := make(chan error, 1)
	go func() { closed <- d.Close(context.Background()) }()
	var rd gateway.Readiness
	await.Until(t, 3*time.Second, "/readyz saying shutting down", func() bool {
		code, body := httpGet(t, base+"/readyz")
		return code == 503 && json.Unmarshal(body, &rd) == nil && len(rd.NotReady) == 1 && rd.NotReady[0] == "running: shutting down"
	})
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("the gateway still answers after Close")
	}
}
