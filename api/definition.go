package api

import (
	"encoding/json"
	"net/url"
	"strings"
)

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
	// RestartDelayMs: absent means the default (1 s), -1 at once.
	RestartDelayMs    int64 `json:"restartDelayMs,omitempty"`
	RestartDelayMaxMs int64 `json:"restartDelayMaxMs,omitempty"`
	RestartResetMs    int64 `json:"restartResetAfterMs,omitempty"`
	// Restart is "on-failure" (default) or "always".
	Restart         string `json:"restart,omitempty" jsonschema:"enum=on-failure,enum=always"`
	StatsIntervalMs int64  `json:"statsIntervalMs,omitempty"`
	// SpawnEnv are the globs of the environment variables a spawn may
	// set; SpawnCwd lets it choose the working directory.
	SpawnEnv []string `json:"spawnEnv,omitempty"`
	SpawnCwd bool     `json:"spawnCwd,omitempty"`
	// MaxInstances caps the processes of this definition on a node (0:
	// no cap of its own).
	MaxInstances int `json:"maxInstances,omitempty"`
	// Instances is how many of it the node keeps running (<name>/<k>).
	Instances int `json:"instances,omitempty"`
	// User and Group run the child as someone else (the node must be root).
	User  string `json:"user,omitempty"`
	Group string `json:"group,omitempty"`
	// InheritEnv: the child starts from the node's environment (without
	// CORRAL_* and NATS_*). Absent means true.
	InheritEnv *bool      `json:"inheritEnv,omitempty"`
	Limits     LimitsInfo `json:"limits"`
}

// LimitsInfo is the serialisable form of Limits, in the spec's units.
type LimitsInfo struct {
	MaxRuntimeMs  int64   `json:"maxRuntimeMs,omitempty"`
	MaxMemoryMb   float64 `json:"maxMemoryMb,omitempty"`
	MaxCpuPercent float64 `json:"maxCpuPercent,omitempty"`
}

// Redacted returns the definition as replies show it: the values of
// environment variables whose names say they are secrets (PASSWORD,
// SECRET, TOKEN, CREDENTIAL, KEY) are replaced by "xxxxx", and so are the
// passwords of URLs in the others.
func (d DefinitionInfo) Redacted() DefinitionInfo {
	if len(d.Env) == 0 {
		return d
	}
	env := make(map[string]string, len(d.Env))
	for k, v := range d.Env {
		env[k] = redactValue(k, v)
	}
	d.Env = env
	return d
}

var secretWords = []string{"PASSWORD", "PASSWD", "SECRET", "TOKEN", "CREDENTIAL", "KEY"}

func redactValue(key, v string) string {
	upper := strings.ToUpper(key)
	for _, w := range secretWords {
		if strings.Contains(upper, w) {
			return "xxxxx"
		}
	}
	if !strings.Contains(v, "@") {
		return v
	}
	if u, err := url.Parse(v); err == nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			return u.Redacted()
		}
		u.User = url.User("xxxxx")
		return u.String()
	}
	return v
}
