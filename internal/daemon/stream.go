package daemon

import (
	"context"
	"errors"
	"time"

	"github.com/corral-run/corral/bus"
	"github.com/corral-run/corral/config"
)

// relayConfig is how the node publishes: with JetStream available
// (embedded with jetstream on, or an external server, which may have it),
// every process.> message is kept in the stream CORRAL_EVENTS and, in
// durable mode, a child's ack of an event waits until it is stored.
func relayConfig(cfg *config.Config) bus.RelayConfig {
	n := cfg.NATS
	if n.Embedded() && !n.JetStream {
		return bus.RelayConfig{Buffer: n.PublishBuffer}
	}
	return bus.RelayConfig{Durable: n.Durable, Buffer: n.PublishBuffer,
		Stream: &bus.StreamConfig{MaxAge: n.StreamMaxAge, MaxBytes: n.StreamMaxBytes, Replicas: n.StreamReplicas}}
}

// setUpStream ensures the event stream before any child can speak. The
// embedded server must take it (a refusal is a configuration error); an
// external server without JetStream means no history and acks that mean
// "handed to NATS"; one that is unreachable now gets the stream when the
// connection comes up.
func (d *Daemon) setUpStream() error {
	n := d.cfg.NATS
	if n.Embedded() && !n.JetStream {
		d.log.Info("JetStream is off: no event history, and a child's ack means handed to NATS")
		return nil
	}
	if !d.nc.IsConnected() {
		d.log.Warn("NATS is unreachable: the event stream will be set up once connected; until then a child's ack means handed to NATS",
			"stream", bus.StreamName)
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := d.svc.EnsureStream(ctx)
	switch {
	case err == nil:
		return nil
	case n.Embedded():
		return err
	case errors.Is(err, bus.ErrNoJetStream):
		d.log.Warn("the NATS server has no JetStream: no event history, and a child's ack means handed to NATS", "err", err)
	default:
		d.log.Warn("cannot set up the event stream; retrying on reconnect; until then a child's ack means handed to NATS", "err", err)
	}
	return nil
}
