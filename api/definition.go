package api

import "encoding/json"

// DefinitionInfo is the serialisable form of a node's definition (package
// node's Definition without its callbacks): what define takes and what
// definitions lists.
type DefinitionInfo struct {
	Name    string                     `json:"name"`
	Command string                     `json:"command"`
	Args    []string                   `json:"args,omitempty"`
	Cwd     string                     `json:"cwd,omitempty"`
	Env     map[string]string          `json:"env,omitempty"`
	Events  map[string]json.RawMessage `json:"events,omitempty"`
	// HeartbeatTimeoutMs: absent means the default, 0 turns monitoring off.
	HeartbeatTimeoutMs *int64 `json:"heartbeatTimeoutMs,omitempty"`
	AutoRestart        bool   `json:"autoRestart"`
	MaxRestarts        int    `json:"maxRestarts"`
	StopSignal         string `json:"stopSignal"`
	StopTimeoutMs      int64  `json:"stopTimeoutMs"`
	RestartDelayMs     int64  `json:"restartDelayMs,omitempty"`
	RestartDelayMaxMs  int64  `json:"restartDelayMaxMs,omitempty"`
	RestartResetMs     int64  `json:"restartResetAfterMs,omitempty"`
	// Restart is "on-failure" (default) or "always".
	Restart         string     `json:"restart,omitempty" jsonschema:"enum=on-failure,enum=always"`
	StatsIntervalMs int64      `json:"statsIntervalMs,omitempty"`
	Limits          LimitsInfo `json:"limits"`
}

// LimitsInfo is the serialisable form of Limits, in the spec's units.
type LimitsInfo struct {
	MaxRuntimeMs  int64   `json:"maxRuntimeMs,omitempty"`
	MaxMemoryMb   float64 `json:"maxMemoryMb,omitempty"`
	MaxCpuPercent float64 `json:"maxCpuPercent,omitempty"`
}
