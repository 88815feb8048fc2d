// Command corralctl drives a Corral cluster over NATS: it lists nodes,
// definitions and processes, spawns, stops and restarts processes, sends
// them messages, reads their logs, tails their events and prints the JSON
// Schemas of Corral's messages. Run "corralctl --help" for the commands.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
