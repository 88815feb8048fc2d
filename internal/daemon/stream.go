package daemon

import (
	"context"
	"errors"
	"time"

	"github.com/corral-run/corral/bus"
	"github.com/corral-run/corral/bus/relay"
	"github.com/corral-run/corral/config"
)

// relayConfig is how the node publishes: with JetStream available
// (embedded with jetstream on, or an external server, which may have it),
// every lifecycle message and child event is kept in the stream
// CORRAL_EVENTS (bus.HistorySubjects) and, in
// durable mode, a child's ack of an event waits until it is stored.
func relayConfig(cfg *config.Config) relay.Config {
	n := cfg.NATS
	if n.Embedded() && !n.JetStream {
		return relay.Config{Buffer: n.PublishBuffer}
	}
	replicas := n.StreamReplicas
	if replicas == 0 && n.Embedded() {
		// Auto: an external server's count is known only once connected,
		// and is the relay's to make.
		replicas = bus.AutoReplicas(clusterConfig(n).Members())
	}
	return relay.Config{Durable: n.Durable, Buffer: n.PublishBuffer, StatsStore: n.StatsStore,
		Stream: &relay.StreamConfig{MaxAge: n.StreamMaxAge, MaxBytes: n.StreamMaxBytes, Replicas: replicas}}
}

// setUpStream ensures the event stream before any child can speak. The
// embedded server must take it (a refusal is a configuration error); an
// external server without JetStream means no history and acks that mean
// "handed to NATS"; one that is unreachable now gets the stream when the
// connection comes up, and one that refuses it for now (a JetStream
// cluster without a leader yet) gets it from the relay's retries.
//
// A member of an embedded cluster does not wait: its JetStream is
// available only once the other members are up and have elected a leader
// (on a first start, all of those listed in the routes), and they may be
// starting after it. It serves the control plane and supervises at once,
// and the relay sets the stream up in the background; until it is there
// a child's acks of durable events wait for it (up to the relay's store
// timeout), and lifecycle messages are sent again until stored.
func (d *Daemon) setUpStream() error {
	n := d.cfg.NATS
	if n.Embedded() && !n.JetStream {
		d.log.Info("JetStream is off: no event history, and a child's ack means handed to NATS")
		return nil
	}
	if n.Embedded() && n.Cluster.Listen != "" {
		d.log.Info("JetStream cluster: the event stream is set up once the cluster has a leader; until then children's acks of durable events wait for it",
			"stream", bus.StreamName, "replicas", relayConfig(d.cfg).Stream.Replicas, "cluster", n.Cluster.Name)
		d.svc.Relay().EnsureStreamInBackground()
		return nil
	}
	if !d.nc.IsConnected() {
		d.log.Warn("NATS is unreachable: the event stream will be set up once connected; until then children's acks of durable events wait for it",
			"stream", bus.StreamName)
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := d.svc.Relay().EnsureStream(ctx)
	switch {
	case err == nil:
		return nil
	case n.Embedded():
		return err
	case errors.Is(err, bus.ErrNoJetStream):
		d.log.Warn("the NATS server has no JetStream: no event history, and a child's ack means handed to NATS", "err", err)
	default:
		d.log.Warn("cannot set up the event stream; retrying in the background; until then children's acks of durable events wait for it", "err", err)
		d.svc.Relay().EnsureStreamInBackground()
	}
	return nil
}
