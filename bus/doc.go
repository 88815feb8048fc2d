// Package bus is Corral's vocabulary on NATS, shared by every side: the
// one place where subject names are built (subjects.go: the events on
// process.>, the control plane on corral.>, and a followed process's
// output on corral.logs.<id>, which its node publishes only while a
// follower holds a lease taken with corral.proc.<id>.follow), the headers
// every message carries (and those of the output: its offset and epoch),
// the names of the event stream (CORRAL_EVENTS) and its de-duplication
// window, the JetStream helpers every side needs (WaitJetStream,
// AutoReplicas, ErrNoJetStream), the client connection (Connect) and
// Corral's Version. It imports nothing of Corral's.
//
// Everything Corral does on NATS lives in its sub-packages, each one
// concern:
//
//   - bus/control: the Go client of the control plane (Control), used by
//     corralctl and by Go services: spawn and placement, stop, list, the
//     cluster's nodes, live events and the event history. It links no
//     NATS server, no supervisor and no schema compiler.
//   - bus/service: a node's control service (micro service "corral"); it
//     is the node.Reporter the supervisor reports to, and drives the
//     supervisor through its small Supervisor interface.
//   - bus/relay: how a node's reports become NATS messages: subjects and
//     headers, the backlog that rides out NATS outages, durable events
//     acknowledged once JetStream stored them, the event stream.
//   - bus/presence: a node's liveness on the bus: its heartbeat, its
//     record in the node registry, and the announcement of other nodes'
//     loss (process.node_lost).
//   - bus/registry: the node registry, the JetStream KV bucket
//     CORRAL_NODES, as both sides read and write it.
//   - bus/embedded: the embedded nats-server (alone, clustered, leaf).
//   - bus/catalog: the JSON Schemas of every message Corral sends.
//
// The message types themselves (ManagedProcess, payloads, requests and
// replies) are in package api.
package bus
