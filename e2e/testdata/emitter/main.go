// Command emitter is a test worker: it emits "tick" events {seq} with acks,
// a few hundred a second, and appends the seq of every acked event, and
// when it was acked (unix milliseconds), to $EMITTER_DIR/<processId>.acked
// ("<seq> <ms>" a line), so a test can check that every acked event was
// stored exactly once, across a node crash. SIGTERM: flush, disconnect,
// exit 0.
//
// Optional settings, for the partition and chaos tests:
//   - EMITTER_INTERVAL (a Go duration, default 2ms): the pause between
//     two events;
//   - EMITTER_HEARTBEAT (default 500ms): the client's heartbeat interval;
//   - EMITTER_JOURNAL=1: every heartbeat interval, while the client is
//     connected (so it queues heartbeats for the node), the time in unix
//     milliseconds is appended to $EMITTER_DIR/<processId>.alive: the
//     child's own record of the heartbeats it sent, to hold against a
//     watchdog kill.
//
// An event the node refuses (it could not store it in time: "unavailable")
// is recorded in <processId>.nacked and the emitter goes on; any other
// failure ends it with status 1.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/corral-run/corral/client"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	interval := durationEnv("EMITTER_INTERVAL", 2*time.Millisecond)
	heartbeat := durationEnv("EMITTER_HEARTBEAT", 500*time.Millisecond)
	c, err := client.Connect(ctx, client.WithHeartbeatInterval(heartbeat),
		client.WithReconnectInterval(100*time.Millisecond), client.WithMaxReconnectAttempts(600))
	if err != nil {
		fmt.Fprintln(os.Stderr, "emitter:", err)
		os.Exit(1)
	}
	dir := os.Getenv("EMITTER_DIR")
	f := openAppend(filepath.Join(dir, c.ProcessID()+".acked"))
	defer f.Close()
	if os.Getenv("EMITTER_JOURNAL") == "1" {
		go journal(ctx, c, filepath.Join(dir, c.ProcessID()+".alive"), heartbeat)
	}
	var nacked *os.File
	for seq := 1; ctx.Err() == nil; seq++ {
		if err := c.Emit(ctx, "tick", map[string]int{"seq": seq}); err != nil {
			if ctx.Err() != nil {
				break
			}
			if !errors.Is(err, client.ErrRejected) {
				fmt.Fprintln(os.Stderr, "emitter: event", seq, "not acked:", err)
				os.Exit(1)
			}
			fmt.Fprintln(os.Stderr, "emitter: event", seq, "refused:", err)
			if nacked == nil {
				nacked = openAppend(filepath.Join(dir, c.ProcessID()+".nacked"))
				defer nacked.Close()
			}
			fmt.Fprintf(nacked, "%d\n", seq)
			continue
		}
		fmt.Fprintf(f, "%d %d\n", seq, time.Now().UnixMilli())
		select {
		case <-time.After(interval):
		case <-ctx.Done():
		}
	}
	flushCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = c.Flush(flushCtx)
	_ = c.Disconnect()
}

// journal records, every heartbeat interval, that the client is connected.
func journal(ctx context.Context, c *client.Client, path string, every time.Duration) {
	f := openAppend(path)
	defer f.Close()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if c.Connected() {
				fmt.Fprintf(f, "%d\n", now.UnixMilli())
			}
		}
	}
}

func openAppend(path string) *os.File {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		fmt.Fprintln(os.Stderr, "emitter:", err)
		os.Exit(1)
	}
	return f
}

func durationEnv(key string, def time.Duration) time.Duration {
	d, err := time.ParseDuration(os.Getenv(key))
	if err != nil || d <= 0 {
		return def
	}
	return d
}
