// Command emitter is a test worker: it emits "tick" events {seq} with acks,
// a few hundred a second, and appends the seq of every acked event to
// $EMITTER_DIR/<processId>.acked, so a test can check that every acked event
// was stored exactly once, across a node crash. SIGTERM: flush, disconnect,
// exit 0.
package main

import (
	"context"
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
	c, err := client.Connect(ctx, client.WithHeartbeatInterval(500*time.Millisecond),
		client.WithReconnectInterval(100*time.Millisecond), client.WithMaxReconnectAttempts(600))
	if err != nil {
		fmt.Fprintln(os.Stderr, "emitter:", err)
		os.Exit(1)
	}
	f, err := os.OpenFile(filepath.Join(os.Getenv("EMITTER_DIR"), c.ProcessID()+".acked"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		fmt.Fprintln(os.Stderr, "emitter:", err)
		os.Exit(1)
	}
	defer f.Close()
	for seq := 1; ctx.Err() == nil; seq++ {
		if err := c.Emit(ctx, "tick", map[string]int{"seq": seq}); err != nil {
			if ctx.Err() != nil {
				break
			}
			fmt.Fprintln(os.Stderr, "emitter: event", seq, "not acked:", err)
			os.Exit(1)
		}
		fmt.Fprintf(f, "%d\n", seq)
		time.Sleep(2 * time.Millisecond)
	}
	flushCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = c.Flush(flushCtx)
	_ = c.Disconnect()
}
