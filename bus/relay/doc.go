// Package relay turns what a node's supervisor reports (node.Report) into
// NATS messages: the subject of each report, the Corral-* and Nats-Msg-Id
// headers, and delivery that holds when NATS does not.
//
// A Relay publishes with core NATS (buffered by the connection, no flush
// per message). While NATS is away, what overflows nats.go's reconnect
// buffer waits in a bounded backlog (backlog.go); a full backlog makes a
// child's reports wait (back-pressure) rather than anything being lost.
// With durable events on, an event that carries an id is acknowledged to
// its child only once the stream CORRAL_EVENTS stored it (durable.go: the
// durable-ack window, not to be confused with the node's own records of
// its processes, which package node keeps on disk). EnsureStream sets the
// stream up (stream.go); link.go follows the connection's state.
//
// It does not answer requests (package bus/service does) and knows nothing
// of the other nodes (package bus/presence).
package relay
