// Package registry is the node registry: the JetStream KV bucket
// CORRAL_NODES where every node keeps its record (<node>: its last
// NodeInfo) and its unfinished processes (<node>.procs, and
// <node>.procs.<k> for the parts of a list longer than a message:
// parts.go). It holds what
// both sides share: the bucket's set-up (Ensure), its keys, reading
// records and process lists (the control client reads them; package
// bus/presence writes them), and when a record says a node is gone
// (MissedHeartbeats intervals without a heartbeat).
//
// Without JetStream there is no registry: discovery is then live only.
package registry
