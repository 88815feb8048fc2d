// Package service is a node's control service: the NATS micro service
// "corral" every node registers, answering corral.node.<node>.*,
// corral.proc.<id>.* (only the owning node subscribes), corral.spawn.<name>
// (a queue group of the nodes that define name), corral.list and
// corral.registry. A Service is also the node.Reporter the supervisor
// reports to: it hands every report to its Relay (package bus/relay) and
// starts answering for a new process; and it owns the node's presence
// Announcer (package bus/presence).
//
// It also publishes the output of the processes someone follows on
// corral.logs.<id>, while a follower holds a lease it renews with
// corral.proc.<id>.follow, and nothing while nobody does (follow.go: the
// wire design, the leases and the bounds).
//
// It drives the supervisor through the small Supervisor interface declared
// here, so package node knows nothing of NATS. Every error it answers is a
// sentence that says what could not be done, with the code of its kind
// (api.Code) in the micro error headers.
package service
