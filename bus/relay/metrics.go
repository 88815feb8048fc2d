package relay

// Read-only figures for the node's metrics (package bus/metrics reads
// them at scrape time): how far behind NATS and JetStream the relay is.
// Dropped (relay.go) counts what was lost.

// StorePending is the number of durable events and lifecycle messages
// waiting for JetStream to store them (the children's acks wait too): the
// lag of the durable store, at most twice Config.Buffer.
func (r *Relay) StorePending() int { return int(r.unstored.Load() + r.lifecycle.Load()) }

// Backlog is the number of messages waiting for NATS to come back (what
// nats.go's reconnect buffer could not hold).
func (r *Relay) Backlog() int { return int(r.backlog.busy.Load()) }
