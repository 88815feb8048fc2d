// Command idle-worker is the smallest useful Corral worker: it connects to
// its node, heartbeats, and waits for SIGTERM. The 1,000-children benchmark
// runs it, and it is a starting point for a daemon that only needs to be
// supervised.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/corral-run/corral/client"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	interval := client.DefaultHeartbeatInterval
	if v := os.Getenv("IDLE_HEARTBEAT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			fmt.Fprintln(os.Stderr, "idle-worker: IDLE_HEARTBEAT:", err)
			os.Exit(2)
		}
		interval = d
	}
	c, err := client.Connect(ctx, client.WithHeartbeatInterval(interval))
	if err != nil {
		fmt.Fprintln(os.Stderr, "idle-worker:", err)
		os.Exit(1)
	}
	select {
	case <-ctx.Done():
		_ = c.Disconnect()
	case <-c.Done():
		fmt.Fprintln(os.Stderr, "idle-worker: lost the node")
		os.Exit(1)
	}
}
