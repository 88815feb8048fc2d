// Package control is the Go client of Corral's control plane: what
// corralctl uses and what a Go service imports to drive the cluster and
// watch it. A Control spawns (on a node, by labels, or on any node that
// defines the name), stops, restarts, sends to and reads the logs of
// processes, follows their output live (Follow, FollowAll: follow.go),
// lists the processes and nodes of the whole cluster (scatter-gather,
// gather.go), defines processes, and follows live events (Events,
// Subscribe) or replays the history (History).
//
// It speaks only NATS (nats.go, its micro and jetstream packages) and the
// types of package api: importing it links no NATS server, no supervisor
// (package node), no gopsutil and no schema compiler. Errors are of the
// kinds of package api (test with errors.Is), plus ErrTimeout and
// ErrUnreachable, which only a client can tell.
package control
