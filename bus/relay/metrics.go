package relay

// Read-only figures for the node's metrics (package bus/metrics reads
// them at scrape time): how far behind NATS and JetStream the relay is.
// Dropped (relay.go) counts what was lost.

// StorePending is the number of durable events waiting for JetStream to
// store them (their children's acks wait too): the lag of the durable
// store, at most Config.Buffer.
func (r *Relay) StorePending() int { return len(r.slots) }

// Backlog is the number of messages waiting for NATS to come back (what
// nats.go's reconnect buffer could not hold).
func (r *Relay) Backlog() int { return int(r.backlog.busy.Load()) }
