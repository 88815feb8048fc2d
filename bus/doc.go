// Package bus is everything Corral does on NATS: starting the embedded
// nats-server (on its own, as a member of a NATS cluster with clustered
// JetStream, or as a leaf node or hub), connection options, the one place where subject names are
// built, the headers every message carries, publishing what the supervisor
// reports (Relay, a node.Reporter), the event history (the JetStream
// stream CORRAL_EVENTS: EnsureStream, durable events, Control.History),
// the control service every node registers (micro service "corral") and
// its Go client Control, used by corralctl and by Go services.
//
// The Relay rides out NATS outages: what cannot be handed on waits in
// bounded buffers, and when they are full a child's reports wait too
// (back-pressure through delayed acks) rather than anything being lost.
//
// Discovery spans the cluster: every node publishes a heartbeat
// (corral.node.<node>.heartbeat) and, with JetStream, keeps its record and
// process list in the node registry (the KV bucket CORRAL_NODES), so that
// Control.Nodes and Control.List show the nodes that are gone and what ran
// on them, requests for their processes fail fast (ErrUnreachable), and
// one surviving node announces each loss on process.node_lost. SpawnAt
// places a process by node or by labels.
//
// The supervisor (package node) knows nothing of NATS; bus drives it
// through the small Supervisor interface declared here.
package bus
