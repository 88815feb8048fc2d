// Package service is a node's control service: the NATS micro service
// "corral" every node registers, answering corral.node.<node>.*,
// corral.proc.<id>.* (only the owning node subscribes), corral.spawn.<name>
// (a queue group of the nodes that define name), corral.list and
// corral.registry. A Service is also the node.Reporter the supervisor
// reports to: it hands every report to its Relay (package bus/relay) and
// starts answering for a new process; and it owns the node's presence
// Announcer (package bus/presence).
//
// It drives the supervisor through the small Supervisor interface declared
// here, so package node knows nothing of NATS. Every error it answers is a
// sentence that says what could not be done, with the code of its kind
// (api.Code) in the micro error headers.
package service
