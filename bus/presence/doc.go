// Package presence is a node's liveness on the bus: not a child's
// heartbeat (package node watches those), but the node's own. An
// Announcer publishes the node's NodeInfo on corral.node.<node>.heartbeat
// every interval, keeps the node's record and process list in the node
// registry (package bus/registry), follows the other nodes' heartbeats
// and process lists, having read their records once (peers.go), and when
// one goes quiet for registry.MissedHeartbeats intervals and does not
// answer, agrees with the other survivors on which of them announces the
// loss on process.node_lost, and marks it Lost in the registry (a
// compare-and-set on the record). It also answers what it knows of the
// registry (View) for corral.registry.
//
// The control service (package bus/service) owns the Announcer: it starts
// it in Serve and stops it in Close.
package presence
