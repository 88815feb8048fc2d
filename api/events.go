package api

import (
	"encoding/json"

	"github.com/corral-run/corral/client/wire"
)

// The payloads published on process.> (DESIGN.md "Subjects and payloads").

// ProcessRef is the payload of process.connected and process.heartbeat.
type ProcessRef struct {
	ProcessID string `json:"processId"`
	Name      string `json:"name"`
}

// Spawned is the payload of process.spawned.
type Spawned struct {
	ProcessID string `json:"processId"`
	Name      string `json:"name"`
	PID       int    `json:"pid"`
	Node      string `json:"node"`
}

// Reconnected is the payload of process.reconnected.
type Reconnected struct {
	ProcessID string `json:"processId"`
	Name      string `json:"name"`
	PID       int    `json:"pid"`
}

// StatsReport is the payload of process.stats and process.<name>.stats.
type StatsReport struct {
	ProcessID string     `json:"processId"`
	Name      string     `json:"name"`
	Stats     wire.Stats `json:"stats"`
	// Source is "client" (sent by the child) or "node" (sampled by the node).
	Source string `json:"source" jsonschema:"enum=client,enum=node"`
}

// Stale is the payload of process.stale.
type Stale struct {
	ProcessID string `json:"processId"`
	Name      string `json:"name"`
	TimeSince int64  `json:"timeSince"`
}

// Stopped is the payload of process.stopped.
type Stopped struct {
	ProcessID string `json:"processId"`
	Name      string `json:"name"`
	ExitCode  *int   `json:"exitCode" jsonschema:"nullable"`
}

// Crashed is the payload of process.crashed.
type Crashed struct {
	ProcessID string `json:"processId"`
	Name      string `json:"name"`
	ExitCode  *int   `json:"exitCode" jsonschema:"nullable"`
	Error     string `json:"error"`
}

// Restarted is the payload of process.restarted.
type Restarted struct {
	OldProcessID string `json:"oldProcessId"`
	NewProcessID string `json:"newProcessId"`
	Name         string `json:"name"`
	Attempt      int    `json:"attempt"`
}

// RestartLimit is the payload of process.restart_limit.
type RestartLimit struct {
	ProcessID string `json:"processId"`
	Name      string `json:"name"`
	Restarts  int    `json:"restarts"`
}

// LimitsExceeded is the payload of process.limits_exceeded.
type LimitsExceeded struct {
	ProcessID string  `json:"processId"`
	Name      string  `json:"name"`
	Reason    string  `json:"reason" jsonschema:"enum=maxRuntimeMs,enum=maxMemoryMb,enum=maxCpuPercent"`
	Limit     float64 `json:"limit"`
	Value     float64 `json:"value"`
}

// WatchdogStale is the payload of process.watchdog.stale.
type WatchdogStale struct {
	ProcessID string `json:"processId"`
	Name      string `json:"name"`
	Reason    string `json:"reason"`
	TimeoutMs int64  `json:"timeoutMs"`
}

// WatchdogKilled is the payload of process.watchdog.killed.
type WatchdogKilled struct {
	ProcessID string  `json:"processId"`
	Name      string  `json:"name"`
	Reason    string  `json:"reason"`
	Value     float64 `json:"value"`
}

// EventPayload documents process.<name>.<event>: the child's data with
// processId and name added.
type EventPayload struct {
	ProcessID string `json:"processId"`
	Name      string `json:"name"`
	// The event's own fields follow, spread at the top level.
	Data map[string]json.RawMessage `json:"-"`
}

// NodeLost is the payload of process.node_lost.
type NodeLost struct {
	Node string `json:"node"`
}

// Watchdog reasons: the spec's limit names, and heartbeat.
const (
	ReasonHeartbeat = "heartbeat"
	ReasonRuntime   = "maxRuntimeMs"
	ReasonMemory    = "maxMemoryMb"
	ReasonCPU       = "maxCpuPercent"
)

// Sources of a StatsReport.
const (
	StatsFromClient = "client" // sent by the child
	StatsFromNode   = "node"   // sampled by the node
)
