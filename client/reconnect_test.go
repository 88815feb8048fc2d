package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/corral-run/corral/client/wire"
)

// waitClient waits, on the client's own change notifications, until cond
// holds; cond runs with c.mu held.
func waitClient(t *testing.T, c *Client, what string, cond func(c *Client) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	c.mu.Lock()
	for !cond(c) {
		if err := c.waitLocked(ctx); err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		c.mu.Lock()
	}
	c.mu.Unlock()
}

// waitAway waits until the client has seen the node go away.
func waitAway(t *testing.T, c *Client) {
	t.Helper()
	waitClient(t, c, "the client to lose the connection", func(c *Client) bool { return c.state != stateConnected })
}

// waitHeld polls, with a deadline, until the client holds n events. Taking
// an event wakes nobody, so this one wait polls.
func waitHeld(t *testing.T, c *Client, n int) {
	t.Helper()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	deadline := time.After(waitFor)
	for {
		c.mu.Lock()
		held, _ := c.heldLocked()
		c.mu.Unlock()
		if held == n {
			return
		}
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("the client holds %d events, want %d", held, n)
		}
	}
}

// goFlush runs Flush on a goroutine and returns its result channel.
func goFlush(ctx context.Context, c *Client) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- c.Flush(ctx) }()
	return ch
}

// returned reports whether ch has a result already, without waiting.
func returned(ch <-chan error) bool {
	select {
	case err := <-ch:
		panic(fmt.Sprintf("returned early with %v", err))
	default:
		return false
	}
}

// dataN is the "n" of an event line's data.
func dataN(t *testing.T, l fakeLine) int {
	t.Helper()
	d, ok := l.m["data"].(map[string]any)
	if !ok {
		t.Fatalf("no data in %s", l.raw)
	}
	n, ok := d["n"].(float64)
	if !ok {
		t.Fatalf("no data.n in %s", l.raw)
	}
	return int(n)
}

func idOf(t *testing.T, l fakeLine) uint64 {
	t.Helper()
	id, err := strconv.ParseUint(l.id(), 10, 64)
	if err != nil {
		t.Fatalf("id is not a number in %s", l.raw)
	}
	return id
}

// readEvents reads n event lines, skipping heartbeats.
func readEvents(t *testing.T, fc *fakeConn, n int) []fakeLine {
	t.Helper()
	lines := make([]fakeLine, n)
	for i := range lines {
		lines[i] = fc.nextOf(t, wire.TypeEvent)
	}
	return lines
}

// finishClean disconnects c and checks the node gets no line but
// heartbeats before "disconnecting": no event was sent twice.
func finishClean(t *testing.T, c *Client, fc *fakeConn) {
	t.Helper()
	if err := c.Disconnect(); err != nil {
		t.Fatal(err)
	}
	fc.nextOf(t, wire.TypeDisconnecting)
	fc.waitEOF(t)
}

// TestEventsWaitForTheNode: while the node is away, 1000 events are taken
// without waiting for it; once it is back on the same socket, they arrive
// after "connected", all of them, once each and in order, and every Emit
// returns nil.
func TestEventsWaitForTheNode(t *testing.T) {
	const events = 1000
	for _, mode := range []string{"EmitAsync", "Emit"} {
		t.Run(mode, func(t *testing.T) {
			n := newUnixNode(t)
			n.autoAck.Store(true)
			c, _ := connect(t, n, WithReconnectInterval(5*time.Millisecond), WithMaxReconnectAttempts(100000))
			n.stop()
			waitAway(t, c)

			var wg sync.WaitGroup
			errs := make([]error, events)
			ctx := testCtx(t)
			for i := range events {
				if mode == "EmitAsync" {
					errs[i] = c.EmitAsync(ctx, "item", map[string]int{"n": i})
				} else {
					wg.Go(func() { errs[i] = c.Emit(ctx, "item", map[string]int{"n": i}) })
				}
			}
			waitHeld(t, c, events)
			if c.Connected() {
				t.Fatal("connected while the node is away")
			}

			n.restart(t)
			fc := n.accept(t)
			if l := fc.next(t); l.typ() != wire.TypeConnected {
				t.Fatalf("first line after the reconnect: %s, want connected", l.raw)
			}
			seen := make(map[int]bool, events)
			var prev uint64
			for i, l := range readEvents(t, fc, events) {
				id, nn := idOf(t, l), dataN(t, l)
				if id <= prev || seen[nn] {
					t.Fatalf("event %d: id %d after %d, n %d (seen: %v)", i, id, prev, nn, seen[nn])
				}
				if mode == "EmitAsync" && (nn != i || id != uint64(i+1)) {
					t.Fatalf("event %d arrived as n=%d id=%d", i, nn, id)
				}
				prev, seen[nn] = id, true
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Fatalf("%s %d: %v", mode, i, err)
				}
			}
			if err := c.Flush(testCtx(t)); err != nil {
				t.Fatal(err)
			}
			finishClean(t, c, fc)
		})
	}
}

// TestBufferFull: when the buffer holds its most, EmitAsync and Emit wait
// until their ctx ends and take nothing; an EmitAsync still waiting when the
// node comes back gets in once there is room; nothing taken is lost.
func TestBufferFull(t *testing.T) {
	head, err := New(Config{ProcessID: testPID}).encodeEvent(testCtx(t), "item", map[string]int{"n": 0})
	if err != nil {
		t.Fatal(err)
	}
	size := len(head) + idTailBytes // what each event below counts
	for _, tc := range []struct {
		name  string
		opt   Option
		fills int
	}{
		{"events", WithBuffer(5, 0), 5},
		{"bytes", WithBuffer(0, 3*size+size/2), 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newUnixNode(t)
			c, _ := connect(t, n, tc.opt, WithReconnectInterval(5*time.Millisecond), WithMaxReconnectAttempts(100000))
			n.stop()
			waitAway(t, c)
			for i := range tc.fills {
				if err := c.EmitAsync(testCtx(t), "item", map[string]int{"n": i}); err != nil {
					t.Fatal(err)
				}
			}
			for _, emit := range []func(context.Context, string, any) error{c.EmitAsync, c.Emit} {
				ctx, cancel := context.WithTimeout(testCtx(t), 20*time.Millisecond)
				err := emit(ctx, "item", map[string]int{"n": -1})
				cancel()
				if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrBufferFull) {
					t.Fatalf("emit into a full buffer: %v, want ErrBufferFull and DeadlineExceeded", err)
				}
			}
			waitHeld(t, c, tc.fills)
			late := make(chan error, 1)
			go func() { late <- c.EmitAsync(testCtx(t), "item", map[string]int{"n": tc.fills}) }()

			n.restart(t)
			fc := n.accept(t)
			fc.nextOf(t, wire.TypeConnected)
			for i, l := range readEvents(t, fc, tc.fills) {
				if dataN(t, l) != i {
					t.Fatalf("event %d: %s", i, l.raw)
				}
			}
			for i := range tc.fills { // room comes with the acks
				fc.writeRaw(wire.AppendAck(nil, json.RawMessage(strconv.Itoa(i+1))))
			}
			if err := result(t, late); err != nil {
				t.Fatal(err)
			}
			l := fc.nextOf(t, wire.TypeEvent)
			if dataN(t, l) != tc.fills || idOf(t, l) != uint64(tc.fills+1) {
				t.Fatalf("want the late event with id %d, got %s", tc.fills+1, l.raw)
			}
			fc.writeRaw(wire.AppendAck(nil, json.RawMessage(l.id())))
			if err := c.Flush(testCtx(t)); err != nil {
				t.Fatal(err)
			}
			finishClean(t, c, fc)
		})
	}
}

// TestLostAck: the node reads events and goes away without answering them;
// after the reconnect the client sends "connected", then the unanswered
// events again — same bytes, same ids, in id order — then the one taken
// while the node was away. The answered event is not sent again.
func TestLostAck(t *testing.T) {
	n := newUnixNode(t)
	c, fc := connect(t, n, WithReconnectInterval(5*time.Millisecond), WithMaxReconnectAttempts(100000))
	r1 := goEmit(testCtx(t), c, "item", map[string]int{"n": 1})
	l1 := fc.nextOf(t, wire.TypeEvent)
	fc.write(t, `{"type":"ack","id":`+l1.id()+`}`)
	if err := result(t, r1); err != nil {
		t.Fatal(err)
	}
	r2 := goEmit(testCtx(t), c, "item", map[string]int{"n": 2})
	l2 := fc.nextOf(t, wire.TypeEvent)
	if err := c.EmitAsync(testCtx(t), "item", map[string]int{"n": 3}); err != nil {
		t.Fatal(err)
	}
	l3 := fc.nextOf(t, wire.TypeEvent)
	n.stop() // closes the connection without answering 2 and 3
	waitAway(t, c)
	r4 := goEmit(testCtx(t), c, "item", map[string]int{"n": 4})
	waitHeld(t, c, 3)

	n.restart(t)
	fc2 := n.accept(t)
	if l := fc2.next(t); l.typ() != wire.TypeConnected {
		t.Fatalf("first line after the reconnect: %s, want connected", l.raw)
	}
	again := readEvents(t, fc2, 3)
	for i, want := range []fakeLine{l2, l3} {
		if string(again[i].raw) != string(want.raw) {
			t.Fatalf("resent %s, want %s", again[i].raw, want.raw)
		}
	}
	if dataN(t, again[2]) != 4 || idOf(t, again[2]) != idOf(t, l3)+1 {
		t.Fatalf("want event 4 with the next id, got %s", again[2].raw)
	}
	for _, l := range again {
		fc2.write(t, `{"type":"ack","id":`+l.id()+`}`)
	}
	for _, r := range []<-chan error{r2, r4} {
		if err := result(t, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Flush(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	finishClean(t, c, fc2)
}

// TestGiveUpFailsHeldEvents: once the reconnect attempts are exhausted,
// the events the client held fail with ErrGaveUp: the Emit waiting for one
// returns it, Flush and Err report it, Done is closed.
func TestGiveUpFailsHeldEvents(t *testing.T) {
	n := newUnixNode(t)
	c, fc := connect(t, n, WithReconnectInterval(50*time.Millisecond), WithMaxReconnectAttempts(3))
	sent := goEmit(testCtx(t), c, "item", map[string]int{"n": 0})
	fc.nextOf(t, wire.TypeEvent)
	flushed := goFlush(testCtx(t), c)
	n.stop()
	waitAway(t, c)
	// Taken while the node is away, unless the client gave up already
	// (the attempts take 150 ms): either way it must not be lost silently.
	if err := c.EmitAsync(testCtx(t), "item", map[string]int{"n": 1}); err != nil && !errors.Is(err, ErrGaveUp) {
		t.Fatalf("EmitAsync while away: %v", err)
	}
	for _, ch := range []<-chan error{sent, flushed} {
		if err := result(t, ch); !errors.Is(err, ErrGaveUp) {
			t.Fatalf("err = %v, want ErrGaveUp", err)
		}
	}
	if !closed(c.Done()) {
		t.Fatal("Done not closed after giving up")
	}
	err := c.Err()
	if !errors.Is(err, ErrGaveUp) || !strings.Contains(err.Error(), "after 3 attempts") {
		t.Fatalf("Err() = %v, want ErrGaveUp after 3 attempts", err)
	}
	if err := c.Flush(testCtx(t)); !errors.Is(err, ErrGaveUp) {
		t.Fatalf("Flush after giving up: %v, want ErrGaveUp", err)
	}
	if err := c.EmitAsync(testCtx(t), "item", nil); !errors.Is(err, ErrGaveUp) {
		t.Fatalf("EmitAsync after giving up: %v, want ErrGaveUp", err)
	}
}

// TestFlush: Flush waits for the answers to every event taken before it,
// reports refusals nobody else saw once, and gives up with its ctx.
func TestFlush(t *testing.T) {
	n := newUnixNode(t)
	c, fc := connect(t, n)
	if err := c.Flush(testCtx(t)); err != nil {
		t.Fatalf("Flush with nothing held: %v", err)
	}
	for i := 1; i <= 3; i++ {
		if err := c.EmitAsync(testCtx(t), "item", map[string]int{"n": i}); err != nil {
			t.Fatal(err)
		}
	}
	flushed := goFlush(testCtx(t), c)
	ls := readEvents(t, fc, 3)
	fc.write(t, `{"type":"ack","id":`+ls[0].id()+`}`)
	fc.write(t, `{"type":"ack","id":`+ls[1].id()+`}`)
	// Answers are read in order: once this Emit has its ack, so have 1 and 2.
	r4 := goEmit(testCtx(t), c, "item", map[string]int{"n": 4})
	l4 := fc.nextOf(t, wire.TypeEvent)
	fc.write(t, `{"type":"ack","id":`+l4.id()+`}`)
	if err := result(t, r4); err != nil {
		t.Fatal(err)
	}
	if returned(flushed) {
		t.Fatal("unreachable")
	}
	ctx, cancel := context.WithTimeout(testCtx(t), 20*time.Millisecond)
	defer cancel()
	if err := c.Flush(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Flush with an event unanswered: %v, want DeadlineExceeded", err)
	}
	fc.writeRaw(wire.AppendError(nil, json.RawMessage(ls[2].id()), wire.CodeSchemaInvalid, "n is odd"))
	err := result(t, flushed)
	var ne *NodeError
	if !errors.Is(err, ErrRejected) || !errors.As(err, &ne) || ne.Message != "n is odd" || !strings.Contains(err.Error(), "refused 1 events") {
		t.Fatalf("Flush after a refusal: %v, want the NodeError", err)
	}
	if err := c.Flush(testCtx(t)); err != nil {
		t.Fatalf("second Flush: %v, want nil (the refusal was reported)", err)
	}
}

// TestWithoutAcksWhileAway: with acks off, events taken while the node is
// away are kept and written, in order, after "connected" on the next
// connection; Flush waits for that.
func TestWithoutAcksWhileAway(t *testing.T) {
	const events = 500
	n := newUnixNode(t)
	c, _ := connect(t, n, WithAcks(false), WithReconnectInterval(5*time.Millisecond), WithMaxReconnectAttempts(100000))
	n.stop()
	waitAway(t, c)
	ctx := testCtx(t)
	for i := range events {
		emit := c.EmitAsync
		if i%2 == 1 {
			emit = c.Emit // the same with acks off
		}
		if err := emit(ctx, "item", map[string]int{"n": i}); err != nil {
			t.Fatal(err)
		}
	}
	flushed := goFlush(testCtx(t), c)
	waitHeld(t, c, events)
	n.restart(t)
	fc := n.accept(t)
	if l := fc.next(t); l.typ() != wire.TypeConnected {
		t.Fatalf("first line after the reconnect: %s, want connected", l.raw)
	}
	for i, l := range readEvents(t, fc, events) {
		if dataN(t, l) != i || l.id() != "" {
			t.Fatalf("event %d: %s", i, l.raw)
		}
	}
	if err := result(t, flushed); err != nil {
		t.Fatal(err)
	}
	finishClean(t, c, fc)
}

// TestDisconnectWhileAway: Disconnect does not wait for the node to come
// back; the events held for it fail with ErrClosed.
func TestDisconnectWhileAway(t *testing.T) {
	n := newUnixNode(t)
	c, _ := connect(t, n, WithReconnectInterval(5*time.Millisecond), WithMaxReconnectAttempts(100000))
	n.stop()
	waitAway(t, c)
	waiting := goEmit(testCtx(t), c, "item", nil)
	if err := c.EmitAsync(testCtx(t), "item", nil); err != nil {
		t.Fatal(err)
	}
	waitHeld(t, c, 2)
	if err := c.Disconnect(); err != nil {
		t.Fatal(err)
	}
	if err := result(t, waiting); !errors.Is(err, ErrClosed) {
		t.Fatalf("Emit: %v, want ErrClosed", err)
	}
	if err := c.Flush(testCtx(t)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Flush: %v, want ErrClosed", err)
	}
	if !errors.Is(c.Err(), ErrClosed) {
		t.Fatalf("Err() = %v, want ErrClosed", c.Err())
	}
}
