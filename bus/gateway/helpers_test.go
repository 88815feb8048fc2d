package gateway_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/corral-run/corral/bus/control"
	"github.com/corral-run/corral/bus/gateway"
	"github.com/corral-run/corral/internal/testnode"
	"github.com/corral-run/corral/node"
)

// definitions are what the test nodes offer.
var definitions = []node.Definition{
	testnode.Sleeper,
	{Name: "printer", Command: "sh", Args: []string{"-c", `for i in 1 2 3; do echo "line $i"; sleep 0.1; done; exec sleep 30`},
		StopTimeout: time.Second},
}

// site is a node with its HTTP gateway.
type site struct {
	node *testnode.Node
	gw   *gateway.Gateway
	url  string
}

// startSite starts node n1 (with JetStream: the event stream and its
// history, or without) and a gateway on it, listening on a free loopback
// port; cfg's Listen and Logger are set here.
func startSite(t testing.TB, jetstream bool, cfg gateway.Config) *site {
	t.Helper()
	n := testnode.Start(t, testnode.StartServer(t, jetstream), testnode.Spec{ID: "n1", JetStream: jetstream,
		Definitions: definitions, StatsInterval: 100 * time.Millisecond})
	return startGateway(t, n, cfg)
}

func startGateway(t testing.TB, n *testnode.Node, cfg gateway.Config) *site {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	cfg.NodeID = "n1"
	gw, err := gateway.New(control.New(n.Conn), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := gw.Close(ctx); err != nil {
			t.Errorf("closing the gateway: %v", err)
		}
	})
	return &site{node: n, gw: gw, url: gw.URL()}
}

// answer is one HTTP answer.
type answer struct {
	code   int
	header http.Header
	body   []byte
}

func (a answer) String() string { return http.StatusText(a.code) + " " + string(a.body) }

// decode decodes the body into v, failing the test otherwise.
func (a answer) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(a.body, v); err != nil {
		t.Fatalf("cannot decode %s: %v", a, err)
	}
}

// request sends one request: body, when not nil, as JSON; headers as
// name, value pairs.
func (s *site) request(t testing.TB, method, path string, body any, headers ...string) answer {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(testnode.Context(t), method, s.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if method != "GET" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		switch {
		case headers[i] == "Host":
			req.Host = headers[i+1]
		case headers[i+1] == "":
			req.Header.Del(headers[i])
		default:
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return answer{code: resp.StatusCode, header: resp.Header, body: b}
}

// ok sends a request that must answer want, and decodes its body into v
// (when not nil).
func (s *site) ok(t testing.TB, want int, method, path string, body, v any, headers ...string) {
	t.Helper()
	a := s.request(t, method, path, body, headers...)
	if a.code != want {
		t.Fatalf("%s %s: %v, want %d", method, path, a, want)
	}
	if v != nil {
		a.decode(t, v)
	}
}

// sseEvent is one server-sent event.
type sseEvent struct {
	id, event, data string
}

// stream is an open event stream.
type stream struct {
	resp   *http.Response
	r      *bufio.Reader
	cancel context.CancelFunc
	// comments are the comment lines read so far.
	comments []string
}

// openStream opens an event stream; it must answer 200.
func (s *site) openStream(t testing.TB, path string, headers ...string) *stream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", s.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		t.Fatalf("GET %s: %d %s %s", path, resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	st := &stream{resp: resp, r: bufio.NewReader(resp.Body), cancel: cancel}
	t.Cleanup(st.close)
	return st
}

// close drops the connection, as a client that goes away would.
func (st *stream) close() {
	st.cancel()
	st.resp.Body.Close()
}

// next reads the next event (comments are kept aside), failing the test
// when none comes within 10 s.
func (st *stream) next(t testing.TB) sseEvent {
	t.Helper()
	e, err := st.read(10 * time.Second)
	if err != nil {
		t.Fatalf("no event: %v (comments: %q)", err, st.comments)
	}
	return e
}

// read reads the next event within d.
func (st *stream) read(d time.Duration) (sseEvent, error) {
	timer := time.AfterFunc(d, st.cancel)
	defer timer.Stop()
	var e sseEvent
	var data []string
	for {
		line, err := st.r.ReadString('\n')
		if err != nil {
			return e, err
		}
		line = strings.TrimRight(line, "\r\n")
		switch {
		case line == "":
			if data != nil || e.event != "" {
				e.data = strings.Join(data, "\n")
				return e, nil
			}
		case strings.HasPrefix(line, ":"):
			st.comments = append(st.comments, strings.TrimSpace(line[1:]))
		default:
			field, val, _ := strings.Cut(line, ":")
			val = strings.TrimPrefix(val, " ")
			switch field {
			case "id":
				e.id = val
			case "event":
				e.event = val
			case "data":
				data = append(data, val)
			}
		}
	}
}

// listening waits for the comment that says the stream's subscriptions
// are in place.
func (st *stream) listening(t testing.TB) {
	t.Helper()
	timer := time.AfterFunc(10*time.Second, st.cancel)
	defer timer.Stop()
	for {
		for _, c := range st.comments {
			if strings.HasPrefix(c, "listening on") {
				return
			}
		}
		line, err := st.r.ReadString('\n')
		if err != nil {
			t.Fatalf("the stream never said it was listening: %v (comments %q)", err, st.comments)
		}
		if strings.HasPrefix(line, ":") {
			st.comments = append(st.comments, strings.TrimSpace(line[1:]))
		}
	}
}
