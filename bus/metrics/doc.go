// Package metrics is a node's Prometheus metrics, served at /metrics by
// its HTTP gateway (package bus/gateway), with the official Go client
// library.
//
// Two kinds of figures, kept apart so that relaying an event costs nothing
// but an atomic increment:
//
//   - Counters of what happens come from Reporter, a node.Reporter that
//     wraps the control service: spawns, restarts, crashes, stops, stale
//     heartbeats, watchdog and limit kills (by definition), the reports
//     handed on by kind, and a sample of the relay's latency.
//   - State is read at scrape time by a prometheus.Collector (State):
//     processes by definition and status, per-process CPU and memory, the
//     children's connections, answers to their lines (acked, rejected by
//     code), the relay's lag, the NATS connection, the host, the HTTP
//     gateway's event streams. The Go runtime's and corrald's own process
//     figures (go_*, process_*) come with them.
//
// Cardinality is bounded: no series is labelled by process id. Per-process
// series are labelled by definition and instance (api.ManagedProcess.
// Instance): a process spawned on demand has instance "", and those of a
// definition are summed into one series. So a node has, per definition,
// one series per status and two per instance, plus a fixed set.
//
// It describes this node only: Prometheus scrapes every node. It does not
// serve HTTP itself.
package metrics
