// Package bus is everything Corral does on NATS: starting the embedded
// nats-server, connection options, the one place where subject names are
// built, the headers every message carries, publishing what the supervisor
// reports (Relay, a node.Reporter), the control service every node
// registers (micro service "corral") and its Go client Control, used by
// corralctl and by Go services.
//
// The supervisor (package node) knows nothing of NATS; bus drives it
// through the small Supervisor interface declared here.
package bus
