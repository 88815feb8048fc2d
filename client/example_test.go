package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"log"
	"time"

	"github.com/corral-run/corral/client"
)

// A worker spawned by corrald connects with the settings the node put in
// its environment, reads its metadata and reports progress.
func Example() {
	ctx := context.Background()
	c, err := client.Connect(ctx, client.WithStats(true, 10*time.Second))
	if errors.Is(err, client.ErrNotConfigured) {
		log.Print("not running under corrald; working without reporting")
		return
	}
	if err != nil {
		log.Fatal(err)
	}
	defer c.Disconnect()

	var job struct {
		Input string `json:"input"`
	}
	if err := c.DecodeMetadata(&job); err != nil {
		log.Fatal(err)
	}
	c.OnMessage(func(msg json.RawMessage) {
		log.Printf("the node says %s", msg)
	})
	for percent := 0; percent <= 100; percent += 10 {
		err := c.Emit(ctx, "progress", map[string]any{"percent": percent, "input": job.Input})
		var refused *client.NodeError
		if errors.As(err, &refused) {
			log.Printf("the node refused the event (%s): %s", refused.Code, refused.Message)
		} else if err != nil {
			log.Fatal(err)
		}
	}
}

// Without acks Emit only queues the event: the fastest mode, for
// high-rate telemetry where losing a few events on a reconnect is fine.
func ExampleWithAcks() {
	c, err := client.Connect(context.Background(), client.WithAcks(false))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Disconnect() // flushes what is queued
	for i := range 1000 {
		c.Emit(context.Background(), "sample", map[string]int{"i": i})
	}
}

// EmitAsync hands events to the client without waiting for the node; the
// client sends them in order, keeps them across reconnects (up to the
// buffer's bounds: WithBuffer) and resends those the node had not answered.
// Flush waits until the node has answered every one and reports what went
// wrong: a refusal, or the client giving up reconnecting.
func ExampleClient_EmitAsync() {
	ctx := context.Background()
	c, err := client.Connect(ctx, client.WithBuffer(50000, 64<<20))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Disconnect()
	for i := range 100000 {
		if err := c.EmitAsync(ctx, "sample", map[string]int{"i": i}); err != nil {
			log.Fatal(err) // the client gave up or was disconnected
		}
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := c.Flush(ctx); err != nil {
		log.Fatal(err)
	}
}
