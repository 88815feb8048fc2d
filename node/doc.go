// Package node supervises the child processes of one host: definitions,
// spawn, stop and restart, the per-process socket server that speaks the
// child wire protocol (package client/wire), validation of what children
// send, and the records of every process.
//
// It knows nothing of NATS or of CLI flags: everything it has to tell the
// world goes to a Reporter (implemented by package bus), and the bus drives
// it through the Supervisor's methods. So the supervisor can be tested
// without a broker.
package node
