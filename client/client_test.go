package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/corral-run/corral/client/wire"
)

const testPID = "proc_test_1"

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	t.Cleanup(cancel)
	return ctx
}

// quietLogger drops the client's logs, which some tests provoke on purpose.
func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// connect makes a client for n, connects it and returns it with the node's
// side of the connection, the "connected" line already read.
func connect(t *testing.T, n *fakeNode, opts ...Option) (*Client, *fakeConn) {
	t.Helper()
	opts = append([]Option{WithLogger(quietLogger())}, opts...)
	c := New(n.config(testPID), opts...)
	if err := c.Connect(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Disconnect() })
	fc := n.accept(t)
	fc.nextOf(t, wire.TypeConnected)
	return c, fc
}

// goEmit runs Emit on a goroutine and returns its result channel.
func goEmit(ctx context.Context, c *Client, event string, data any) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- c.Emit(ctx, event, data) }()
	return ch
}

func result(t *testing.T, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(waitFor):
		t.Fatal("Emit did not return")
		return nil
	}
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	case <-time.After(waitFor):
		return false
	}
}

func keys(m map[string]any) []string { return slices.Sorted(maps.Keys(m)) }

// checkEnvelope checks the fields every child line carries.
func checkEnvelope(t *testing.T, l fakeLine, typ string, from, to time.Time) {
	t.Helper()
	if l.typ() != typ {
		t.Fatalf("type = %q, want %q in %s", l.typ(), typ, l.raw)
	}
	if l.m["processId"] != testPID {
		t.Fatalf("processId = %v, want %q in %s", l.m["processId"], testPID, l.raw)
	}
	ts, ok := l.m["timestamp"].(float64)
	if !ok {
		t.Fatalf("timestamp is not a number in %s", l.raw)
	}
	if ts < float64(from.UnixMilli()) || ts > float64(to.UnixMilli()) {
		t.Fatalf("timestamp %v not within [%d, %d]", ts, from.UnixMilli(), to.UnixMilli())
	}
}

func TestConnectFromEnv(t *testing.T) {
	for _, tc := range []struct {
		name string
		node func(testing.TB) *fakeNode
	}{
		{"unix", newUnixNode},
		{"tcp", newTCPNode},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := tc.node(t)
			n.setEnv(t, testPID, `{"job":"encode"}`)
			from := time.Now()
			c, err := Connect(testCtx(t), WithLogger(quietLogger()))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Disconnect()
			fc := n.accept(t)
			l := fc.next(t)
			checkEnvelope(t, l, wire.TypeConnected, from, time.Now())
			if got := keys(l.m); !slices.Equal(got, []string{"processId", "timestamp", "type"}) {
				t.Fatalf("connected line has fields %v, want exactly type, processId, timestamp: %s", got, l.raw)
			}
			if !c.Connected() || c.ProcessID() != testPID || string(c.Metadata()) != `{"job":"encode"}` {
				t.Fatalf("Connected=%v ProcessID=%q Metadata=%s", c.Connected(), c.ProcessID(), c.Metadata())
			}
		})
	}
}

func TestConnectEnvErrors(t *testing.T) {
	for _, tc := range []struct {
		name, pid, socket, port, want string
	}{
		{"no process id", "", "/tmp/x.sock", "", wire.EnvProcessID},
		{"no transport", "p1", "", "", wire.EnvSocketPath},
		{"bad port", "p1", "", "http", wire.EnvTCPPort},
		{"port out of range", "p1", "", "70000", wire.EnvTCPPort},
	} {
		t.Run(tc.name, func(t *testing.T) {
			setenv(t, wire.EnvProcessID, tc.pid)
			setenv(t, wire.EnvSocketPath, tc.socket)
			setenv(t, wire.EnvTCPPort, tc.port)
			c, err := Connect(testCtx(t))
			if err == nil {
				c.Disconnect()
				t.Fatal("Connect succeeded")
			}
			if !errors.Is(err, ErrNotConfigured) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrNotConfigured naming %s", err, tc.want)
			}
		})
	}
}

func TestMetadata(t *testing.T) {
	n := newUnixNode(t)
	for _, tc := range []struct{ env, want string }{
		{`{"job":"encode","n":3}`, `{"job":"encode","n":3}`},
		{``, `{}`},
		{`not json`, `{}`},
		{`[1,2]`, `{}`},
	} {
		n.setEnv(t, testPID, tc.env)
		cfg, err := ConfigFromEnv()
		if err != nil {
			t.Fatal(err)
		}
		c := New(cfg, WithLogger(quietLogger()))
		if got := string(c.Metadata()); got != tc.want {
			t.Errorf("metadata %q: got %s, want %s", tc.env, got, tc.want)
		}
	}
	c := New(Config{ProcessID: testPID, Metadata: json.RawMessage(`{"job":"encode","n":3}`)})
	var md struct {
		Job string `json:"job"`
		N   int    `json:"n"`
	}
	if err := c.DecodeMetadata(&md); err != nil || md.Job != "encode" || md.N != 3 {
		t.Fatalf("DecodeMetadata: %+v, %v", md, err)
	}
	if err := c.DecodeMetadata(&[]int{}); err == nil {
		t.Fatal("decoding an object into a slice succeeded")
	}
}

func TestEmitAck(t *testing.T) {
	n := newTCPNode(t)
	c, fc := connect(t, n)
	from := time.Now()
	res := goEmit(testCtx(t), c, "progress", map[string]any{"percent": 50})
	l := fc.nextOf(t, wire.TypeEvent)
	checkEnvelope(t, l, wire.TypeEvent, from, time.Now())
	if got := keys(l.m); !slices.Equal(got, []string{"data", "event", "id", "processId", "timestamp", "type"}) {
		t.Fatalf("event line has fields %v: %s", got, l.raw)
	}
	if l.m["event"] != "progress" || fmt.Sprint(l.m["data"]) != "map[percent:50]" {
		t.Fatalf("event line %s", l.raw)
	}
	if _, ok := l.m["id"].(float64); !ok {
		t.Fatalf("id is not a number: %s", l.raw)
	}
	select {
	case err := <-res:
		t.Fatalf("Emit returned before the ack: %v", err)
	default:
	}
	fc.write(t, `{"type":"ack","id":`+l.id()+`}`)
	if err := result(t, res); err != nil {
		t.Fatal(err)
	}

	// nil data is sent as {}.
	res = goEmit(testCtx(t), c, "done", nil)
	l = fc.nextOf(t, wire.TypeEvent)
	if string(mustJSON(t, l.m["data"])) != "{}" {
		t.Fatalf("nil data sent as %s", l.raw)
	}
	fc.write(t, string(wire.AppendAck(nil, json.RawMessage(l.id()))))
	if err := result(t, res); err != nil {
		t.Fatal(err)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestEmitNodeError(t *testing.T) {
	n := newUnixNode(t)
	c, fc := connect(t, n)
	res := goEmit(testCtx(t), c, "progress", map[string]any{"percent": "lots"})
	l := fc.nextOf(t, wire.TypeEvent)
	fc.writeRaw(wire.AppendError(nil, json.RawMessage(l.id()), wire.CodeSchemaInvalid, "percent must be a number"))
	err := result(t, res)
	var ne *NodeError
	if !errors.As(err, &ne) || ne.Code != wire.CodeSchemaInvalid || ne.Message != "percent must be a number" {
		t.Fatalf("err = %v, want a NodeError with code %s", err, wire.CodeSchemaInvalid)
	}
	if !errors.Is(err, ErrRejected) {
		t.Fatalf("errors.Is(%v, ErrRejected) = false", err)
	}
	if !strings.HasPrefix(err.Error(), `cannot emit "progress"`) {
		t.Fatalf("err = %q", err)
	}
}

// TestEmitConcurrent answers many concurrent Emits in reverse order,
// refusing the odd ones, and checks each Emit gets its own answer.
func TestEmitConcurrent(t *testing.T) {
	const emits = 200
	n := newUnixNode(t)
	c, fc := connect(t, n)
	var wg sync.WaitGroup
	errs := make([]error, emits)
	for i := range emits {
		wg.Go(func() { errs[i] = c.Emit(testCtx(t), "item", map[string]int{"n": i}) })
	}
	lines := make([]fakeLine, 0, emits)
	seen := map[string]bool{}
	prev := 0
	for len(lines) < emits {
		l := fc.nextOf(t, wire.TypeEvent)
		id, err := strconv.Atoi(l.id())
		if err != nil || id <= prev || seen[l.id()] {
			t.Fatalf("ids must be increasing integers: %d after %d in %s", id, prev, l.raw)
		}
		prev, seen[l.id()] = id, true
		lines = append(lines, l)
	}
	for _, l := range slices.Backward(lines) {
		nn := int(l.m["data"].(map[string]any)["n"].(float64))
		if nn%2 == 1 {
			fc.writeRaw(wire.AppendError(nil, json.RawMessage(l.id()), wire.CodeInvalidEvent, "odd "+strconv.Itoa(nn)))
		} else {
			fc.writeRaw(wire.AppendAck(nil, json.RawMessage(l.id())))
		}
	}
	wg.Wait()
	for i, err := range errs {
		var ne *NodeError
		switch {
		case i%2 == 0 && err != nil:
			t.Errorf("emit %d: %v, want nil", i, err)
		case i%2 == 1 && (!errors.As(err, &ne) || ne.Message != "odd "+strconv.Itoa(i)):
			t.Errorf("emit %d: %v, want its own refusal", i, err)
		}
	}
}

func TestEmitInvalid(t *testing.T) {
	n := newUnixNode(t)
	c, _ := connect(t, n, WithMaxLineBytes(300))
	for _, tc := range []struct {
		name  string
		event string
		data  any
		want  error
	}{
		{"empty name", "", nil, ErrInvalidEvent},
		{"name with a dot", "a.b", nil, ErrInvalidEvent},
		{"long name", strings.Repeat("x", 65), nil, ErrInvalidEvent},
		{"reserved name", "stats", nil, ErrInvalidEvent},
		{"array data", "e", []int{1}, ErrInvalidEvent},
		{"string data", "e", "text", ErrInvalidEvent},
		{"reserved key processId", "e", map[string]int{"processId": 1}, ErrInvalidEvent},
		{"reserved key name", "e", json.RawMessage(`{"na\u006de":1}`), ErrInvalidEvent},
		{"unmarshallable", "e", map[string]any{"f": func() {}}, ErrInvalidEvent},
		{"too long", "e", map[string]string{"s": strings.Repeat("x", 300)}, ErrLineTooLong},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := c.Emit(testCtx(t), tc.event, tc.data)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestEmitBeforeConnect(t *testing.T) {
	c := New(Config{ProcessID: testPID, SocketPath: "/nonexistent"})
	if err := c.Emit(testCtx(t), "e", nil); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("err = %v, want ErrNotConnected", err)
	}
}

func TestEmitWithoutAcks(t *testing.T) {
	const emits = 3000
	n := newUnixNode(t)
	c, fc := connect(t, n, WithAcks(false))
	for i := range emits {
		if err := c.Emit(testCtx(t), "item", map[string]int{"n": i}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Disconnect(); err != nil {
		t.Fatal(err)
	}
	for i := range emits {
		l := fc.nextOf(t, wire.TypeEvent)
		if l.id() != "" || int(l.m["data"].(map[string]any)["n"].(float64)) != i {
			t.Fatalf("event %d: %s", i, l.raw)
		}
	}
	fc.nextOf(t, wire.TypeDisconnecting)
	fc.waitEOF(t)
}

func TestHeartbeat(t *testing.T) {
	const interval = 30 * time.Millisecond
	n := newUnixNode(t)
	start := time.Now()
	_, fc := connect(t, n, WithHeartbeatInterval(interval))
	first := fc.nextOf(t, wire.TypeHeartbeat)
	if since := time.Since(start); since < interval {
		t.Fatalf("first heartbeat after %v, want one interval (%v)", since, interval)
	}
	checkEnvelope(t, first, wire.TypeHeartbeat, start, time.Now())
	if got := keys(first.m); !slices.Equal(got, []string{"processId", "timestamp", "type"}) {
		t.Fatalf("heartbeat has fields %v", got)
	}
	fc.nextOf(t, wire.TypeHeartbeat)
}

func TestStats(t *testing.T) {
	n := newUnixNode(t)
	start := time.Now()
	_, fc := connect(t, n, WithStats(true, 30*time.Millisecond), WithHeartbeatInterval(time.Hour))
	for range 2 { // one right after connect, one an interval later
		l := fc.nextOf(t, wire.TypeStats)
		checkEnvelope(t, l, wire.TypeStats, start, time.Now())
		if got := keys(l.m); !slices.Equal(got, []string{"processId", "stats", "timestamp", "type"}) {
			t.Fatalf("stats line has fields %v", got)
		}
		st := l.m["stats"].(map[string]any)
		if got := keys(st); !slices.Equal(got, []string{"cpu", "memory", "uptime"}) {
			t.Fatalf("stats has fields %v", got)
		}
		cpu, mem := st["cpu"].(map[string]any), st["memory"].(map[string]any)
		if got := keys(cpu); !slices.Equal(got, []string{"percent", "system", "user"}) {
			t.Fatalf("cpu has fields %v", got)
		}
		if got := keys(mem); !slices.Equal(got, []string{"external", "heapTotal", "heapUsed", "rss"}) {
			t.Fatalf("memory has fields %v", got)
		}
		for _, v := range []any{cpu["user"], cpu["system"], cpu["percent"], mem["external"]} {
			if f, ok := v.(float64); !ok || f < 0 {
				t.Fatalf("bad figure %v in %s", v, l.raw)
			}
		}
		for _, v := range []any{mem["rss"], mem["heapTotal"], mem["heapUsed"], st["uptime"]} {
			if f, ok := v.(float64); !ok || f <= 0 {
				t.Fatalf("want a positive figure, got %v in %s", v, l.raw)
			}
		}
	}
}

func TestStatsSampler(t *testing.T) {
	s := newStatsSampler()
	before, deadline := readCPU(), time.Now().Add(time.Second)
	for readCPU() == before && time.Now().Before(deadline) {
		// burn CPU until the process's CPU time moves
	}
	st := s.sample()
	if st.CPU.User+st.CPU.System <= 0 || st.CPU.Percent <= 0 {
		t.Fatalf("no CPU measured after burning some: %+v", st.CPU)
	}
	if math.Round(st.CPU.Percent*100)/100 != st.CPU.Percent {
		t.Fatalf("percent %v not rounded to 2 decimals", st.CPU.Percent)
	}
	if st.Memory.External != 0 || st.Memory.RSS <= 0 || st.Memory.HeapUsed <= 0 || st.Memory.HeapTotal < st.Memory.HeapUsed {
		t.Fatalf("memory %+v", st.Memory)
	}
}

func TestOnMessage(t *testing.T) {
	n := newUnixNode(t)
	c, fc := connect(t, n)
	got := make(chan string, 10)
	c.OnMessage(func(msg json.RawMessage) { got <- string(msg) })
	res := goEmit(testCtx(t), c, "e", nil)
	l := fc.nextOf(t, wire.TypeEvent)
	fc.write(t, `{"type":"subscribe","channel":"live"}`)
	fc.write(t, `{"type":"ack","id":`+l.id()+`}`)
	fc.write(t, `not json`)
	fc.write(t, ``)
	fc.write(t, `{"type":"error","id":12345,"code":"internal","message":"late"}`)
	fc.write(t, `[1,2]`)
	if err := result(t, res); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`{"type":"subscribe","channel":"live"}`, `[1,2]`} {
		select {
		case msg := <-got:
			if msg != want {
				t.Fatalf("handler got %s, want %s", msg, want)
			}
		case <-time.After(waitFor):
			t.Fatalf("handler did not get %s", want)
		}
	}
	// A handler may disconnect the client.
	c.OnMessage(func(json.RawMessage) { c.Disconnect() })
	fc.write(t, `{"type":"shutdown"}`)
	if !closed(c.Done()) {
		t.Fatal("Done not closed after the handler disconnected")
	}
	fc.nextOf(t, wire.TypeDisconnecting)
}

func TestDisconnect(t *testing.T) {
	n := newUnixNode(t)
	c, fc := connect(t, n)
	from := time.Now()
	if err := c.Disconnect(); err != nil {
		t.Fatal(err)
	}
	l := fc.nextOf(t, wire.TypeDisconnecting)
	checkEnvelope(t, l, wire.TypeDisconnecting, from, time.Now())
	fc.waitEOF(t)
	if err := c.Disconnect(); err != nil {
		t.Fatalf("second Disconnect: %v", err)
	}
	if !closed(c.Done()) {
		t.Fatal("Done not closed")
	}
	if c.Connected() {
		t.Fatal("Connected after Disconnect")
	}
	if err := c.Emit(testCtx(t), "e", nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Emit after Disconnect: %v, want ErrClosed", err)
	}
	if err := c.Connect(testCtx(t)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Connect after Disconnect: %v, want ErrClosed", err)
	}
	checkNoClientGoroutines(t)
}

// checkNoClientGoroutines fails when a goroutine of a Client (supervisor,
// writer, reader, dispatcher) is still running once every client of the
// test has stopped.
func checkNoClientGoroutines(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var left []string
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "corral/client.(*Client).") {
				left = append(left, g)
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("client goroutines still running:\n%s", strings.Join(left, "\n\n"))
		}
		runtime.Gosched()
	}
}

func TestDisconnectFailsUnansweredEmits(t *testing.T) {
	n := newUnixNode(t)
	c, fc := connect(t, n)
	res := goEmit(testCtx(t), c, "e", nil)
	fc.nextOf(t, wire.TypeEvent)
	done := make(chan error, 1)
	go func() { done <- c.Disconnect() }()
	fc.nextOf(t, wire.TypeDisconnecting)
	fc.waitEOF(t)
	fc.conn.Close() // the node closes its side without answering
	if err := result(t, res); !errors.Is(err, ErrClosed) {
		t.Fatalf("unanswered Emit: %v, want ErrClosed", err)
	}
	if err := result(t, done); err != nil {
		t.Fatal(err)
	}
}

// TestReconnect drops the connection with an event unanswered: the client
// connects again, says so, resends the event with its id and gets the ack;
// an event emitted meanwhile is sent after it, and its Emit returns with
// its ack.
func TestReconnect(t *testing.T) {
	n := newUnixNode(t)
	c, fc := connect(t, n, WithReconnectInterval(10*time.Millisecond))
	first := goEmit(testCtx(t), c, "first", map[string]int{"n": 1})
	l1 := fc.nextOf(t, wire.TypeEvent)
	fc.conn.Close()
	second := goEmit(testCtx(t), c, "second", nil)

	fc2 := n.accept(t)
	fc2.nextOf(t, wire.TypeConnected)
	again := fc2.nextOf(t, wire.TypeEvent)
	if again.id() != l1.id() || string(again.raw) != string(l1.raw) {
		t.Fatalf("resent %s, want %s", again.raw, l1.raw)
	}
	fc2.write(t, `{"type":"ack","id":`+again.id()+`}`)
	if err := result(t, first); err != nil {
		t.Fatal(err)
	}
	l2 := fc2.nextOf(t, wire.TypeEvent)
	if l2.m["event"] != "second" {
		t.Fatalf("want the second event, got %s", l2.raw)
	}
	fc2.write(t, `{"type":"ack","id":`+l2.id()+`}`)
	if err := result(t, second); err != nil {
		t.Fatal(err)
	}
	if !c.Connected() {
		t.Fatal("not connected after reconnecting")
	}
}

// TestEmitContextEnds: an Emit whose ctx ends before the ack returns, but
// its event is kept and resent after a reconnect.
func TestEmitContextEnds(t *testing.T) {
	n := newUnixNode(t)
	c, fc := connect(t, n, WithReconnectInterval(10*time.Millisecond))
	ctx, cancel := context.WithCancel(testCtx(t))
	res := goEmit(ctx, c, "e", nil)
	l := fc.nextOf(t, wire.TypeEvent)
	cancel()
	if err := result(t, res); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	fc.conn.Close()
	fc2 := n.accept(t)
	fc2.nextOf(t, wire.TypeConnected)
	if again := fc2.nextOf(t, wire.TypeEvent); again.id() != l.id() {
		t.Fatalf("resent %s, want id %s", again.raw, l.id())
	}
}

func TestGiveUp(t *testing.T) {
	n := newUnixNode(t)
	c, fc := connect(t, n, WithReconnectInterval(5*time.Millisecond), WithMaxReconnectAttempts(3))
	res := goEmit(testCtx(t), c, "e", nil)
	fc.nextOf(t, wire.TypeEvent)
	n.stop() // removes the socket file: every attempt fails
	if err := result(t, res); !errors.Is(err, ErrGaveUp) {
		t.Fatalf("unanswered Emit: %v, want ErrGaveUp", err)
	}
	if !closed(c.Done()) {
		t.Fatal("Done not closed after giving up")
	}
	if err := c.Emit(testCtx(t), "e", nil); !errors.Is(err, ErrGaveUp) || !strings.Contains(err.Error(), "cannot reconnect to the Corral node at unix:") || !strings.Contains(err.Error(), "after 3 attempts") {
		t.Fatalf("Emit after giving up: %v, want ErrGaveUp after 3 attempts", err)
	}
	if c.Connected() {
		t.Fatal("Connected after giving up")
	}
	if err := c.Disconnect(); err != nil {
		t.Fatalf("Disconnect after giving up: %v", err)
	}
	checkNoClientGoroutines(t)
}

func TestConnectGivesUp(t *testing.T) {
	dir := t.TempDir()
	c := New(Config{ProcessID: testPID, SocketPath: dir + "/none.sock"},
		WithReconnectInterval(time.Millisecond), WithMaxReconnectAttempts(2), WithLogger(quietLogger()))
	err := c.Connect(testCtx(t))
	if !errors.Is(err, ErrGaveUp) || !strings.Contains(err.Error(), "after 3 attempts") {
		t.Fatalf("err = %v, want ErrGaveUp after 3 attempts", err)
	}
	ctx, cancel := context.WithCancel(testCtx(t))
	cancel()
	c = New(Config{ProcessID: testPID, SocketPath: dir + "/none.sock"}, WithLogger(quietLogger()))
	if err := c.Connect(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if err := c.Disconnect(); err != nil || !closed(c.Done()) {
		t.Fatalf("Disconnect of a never-connected client: %v", err)
	}
}
