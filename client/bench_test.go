package client

import (
	"context"
	"net"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// countingNode is a lean node for benchmarks: it serves one connection
// with serveAckAll, acking every line with an id and counting events.
type countingNode struct {
	cfg    Config
	events atomic.Int64
	done   chan struct{} // closed when the connection (or the listener) ended
}

func newCountingNode(b *testing.B, unix bool) *countingNode {
	b.Helper()
	network, addr := "tcp", "127.0.0.1:0"
	if unix {
		network, addr = "unix", filepath.Join(b.TempDir(), "p.sock")
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		b.Fatal(err)
	}
	n := &countingNode{cfg: Config{ProcessID: testPID}, done: make(chan struct{})}
	if unix {
		n.cfg.SocketPath = addr
	} else {
		n.cfg.TCPPort = ln.Addr().(*net.TCPAddr).Port
	}
	go func() {
		defer close(n.done)
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		if err := serveAckAll(conn, &n.events); err != nil {
			b.Error(err)
		}
	}()
	b.Cleanup(func() {
		ln.Close()
		<-n.done
	})
	return n
}

// BenchmarkEmit measures events per second from one client to a node that
// acks everything, over a Unix socket and loopback TCP:
//   - acks/parallel: many goroutines Emit at once, each waiting for its ack
//     (pipelined over the one connection);
//   - acks/serial: one goroutine, one event in flight at a time (latency
//     bound);
//   - acks/async: one goroutine, EmitAsync (at most the buffer's 10000
//     events unanswered), then Flush; the time includes the last ack;
//   - noacks: one goroutine, fire and forget; the time includes Disconnect's
//     flush and the node having read every event.
func BenchmarkEmit(b *testing.B) {
	for _, transport := range []string{"unix", "tcp"} {
		b.Run(transport+"/acks/parallel", func(b *testing.B) {
			c, node := benchClient(b, transport == "unix", WithAcks(true))
			data := map[string]any{"percent": 50, "fps": 30}
			b.SetParallelism(128)
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				for pb.Next() {
					if err := c.Emit(ctx, "progress", data); err != nil {
						b.Error(err)
						return
					}
				}
			})
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
			finish(b, c, node, b.N)
		})
		b.Run(transport+"/acks/serial", func(b *testing.B) {
			c, node := benchClient(b, transport == "unix", WithAcks(true))
			data := map[string]any{"percent": 50, "fps": 30}
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for b.Loop() {
				if err := c.Emit(ctx, "progress", data); err != nil {
					b.Fatal(err)
				}
			}
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
			finish(b, c, node, b.N)
		})
		b.Run(transport+"/acks/async", func(b *testing.B) {
			c, node := benchClient(b, transport == "unix", WithAcks(true))
			data := map[string]any{"percent": 50, "fps": 30}
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for b.Loop() {
				if err := c.EmitAsync(ctx, "progress", data); err != nil {
					b.Fatal(err)
				}
			}
			if err := c.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
			finish(b, c, node, b.N)
		})
		b.Run(transport+"/noacks", func(b *testing.B) {
			c, node := benchClient(b, transport == "unix", WithAcks(false))
			data := map[string]any{"percent": 50, "fps": 30}
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			n := 0
			for b.Loop() {
				if err := c.Emit(ctx, "progress", data); err != nil {
					b.Fatal(err)
				}
				n++
			}
			finish(b, c, node, n)
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(n)/elapsed.Seconds(), "events/s")
		})
	}
}

// benchClient connects a client to a fresh acking node.
func benchClient(b *testing.B, unix bool, opts ...Option) (*Client, *countingNode) {
	b.Helper()
	node := newCountingNode(b, unix)
	opts = append([]Option{WithLogger(quietLogger()), WithHeartbeatInterval(time.Hour)}, opts...)
	c := New(node.cfg, opts...)
	if err := c.Connect(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Disconnect() })
	return c, node
}

// finish disconnects c and checks the node received every event.
func finish(b *testing.B, c *Client, node *countingNode, want int) {
	b.Helper()
	if err := c.Disconnect(); err != nil {
		b.Fatal(err)
	}
	select {
	case <-node.done:
	case <-time.After(waitFor):
		b.Fatal("the node did not see the connection end")
	}
	if got := node.events.Load(); got != int64(want) {
		b.Fatalf("the node received %d events, want %d", got, want)
	}
}
