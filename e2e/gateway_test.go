package e2e_test

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/corral-run/corral/bus/metrics/metricstest"
	"github.com/corral-run/corral/internal/await"
)

// httpURL finds where the node's HTTP gateway listens, in its log.
func (n *node) httpURL(t *testing.T) string {
	t.Helper()
	re := regexp.MustCompile(`msg="HTTP gateway listening".* url=(http://\S+)`)
	var url string
	await.Until(t, waitReady, "the HTTP gateway", func() bool {
		b, _ := os.ReadFile(n.logPath)
		if m := re.FindSubmatch(b); m != nil {
			url = string(m[1])
			return true
		}
		return false
	})
	return url
}

// corrald's HTTP gateway, end to end: ready, a spawn over HTTP, the
// encoder's events as SSE with their ids, metrics, and top --json.
func TestHTTPGateway(t *testing.T) {
	n := startNode(t)
	base := n.httpURL(t)

	resp, err := http.Get(base + "/readyz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("readyz: %v %v", resp, err)
	}
	resp.Body.Close()

	// The events, from before the spawn.
	stream, err := http.Get(base + "/api/v1/events?subject=process.encoder.>&since=1m")
	if err != nil || stream.StatusCode != 200 {
		t.Fatalf("events: %v %v", stream, err)
	}
	defer stream.Body.Close()

	resp, err = http.Post(base+"/api/v1/processes", "application/json",
		strings.NewReader(`{"name":"encoder","metadata":{"inputPath":"in.mp4","outputPath":"out.mp4","frames":30}}`))
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("spawn: %v %v", resp, err)
	}
	var mp struct{ ID string }
	_ = json.NewDecoder(resp.Body).Decode(&mp)
	resp.Body.Close()

	// progress events, then complete; every one with a growing id.
	deadline := time.AfterFunc(waitEvent, func() { stream.Body.Close() })
	defer deadline.Stop()
	progress, id, completed := readEncode(bufio.NewScanner(stream.Body), mp.ID)
	if !completed || progress == 0 || id == 0 {
		t.Fatalf("%d progress events, last id %d, completed %v", progress, id, completed)
	}

	resp, err = http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	f := metricstest.Parse(t, resp.Body)
	resp.Body.Close()
	if v, _ := f.Value("corral_spawns_total", "definition", "encoder"); v < 1 {
		t.Errorf("corral_spawns_total{definition=encoder} = %v", v)
	}
	if v, _ := f.Value("corral_events_acked_total"); v < float64(progress) {
		t.Errorf("corral_events_acked_total = %v, want at least the %d progress events", v, progress)
	}

	var snap struct {
		Processes []struct{ ID string } `json:"processes"`
	}
	if err := json.Unmarshal([]byte(n.ctl(t, "top", "--json")), &snap); err != nil {
		t.Fatal(err)
	}
}

// readEncode reads an SSE stream until process id's encode completes: it
// counts the progress events and checks that every id grows.
func readEncode(sc *bufio.Scanner, processID string) (progress int, lastID uint64, completed bool) {
	var event string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "id: "):
			next, _ := strconv.ParseUint(line[4:], 10, 64)
			if next <= lastID {
				return progress, lastID, false
			}
			lastID = next
		case strings.HasPrefix(line, "event: "):
			event = line[7:]
		case strings.HasPrefix(line, "data: ") && strings.Contains(line, processID):
			switch event {
			case "process.encoder.progress":
				progress++
			case "process.encoder.complete":
				return progress, lastID, true
			}
		}
	}
	return progress, lastID, false
}
