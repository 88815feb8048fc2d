// Package api holds the types that cross Corral's process boundaries: what
// a process looks like to the world (ManagedProcess and its Status), the
// serialisable form of a definition, the payloads published on process.>,
// and the requests and replies of the control plane. The node, the control
// service, the Go control client (package bus/control), corralctl and Go
// services all speak these types, so they live here once.
//
// It imports nothing of Corral's but client/wire (the child's stats shape),
// and nothing outside the standard library: importing it costs a program
// no NATS server, no supervisor and no schema compiler. Subject names are
// not here: they are built in package bus.
package api
