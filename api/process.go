package api

import (
	"encoding/json"
	"time"

	"github.com/corral-run/corral/client/wire"
)

// Status is where a managed process is in its life.
type Status string

// The statuses of DESIGN.md. A node reports starting, running, stopping,
// stopped and crashed; StatusUnknown is only given by the control client
// to the processes of a node that is gone.
const (
	StatusStarting Status = "starting"
	StatusRunning  Status = "running"
	StatusStopping Status = "stopping"
	StatusStopped  Status = "stopped"
	StatusCrashed  Status = "crashed"
	StatusUnknown  Status = "unknown"
)

// Finished reports whether the process has ended.
func (s Status) Finished() bool { return s == StatusStopped || s == StatusCrashed }

// ManagedProcess describes one process a node supervises (or supervised):
// every reply that describes a process.
type ManagedProcess struct {
	ID            string          `json:"id"`
	Name          string          `json:"name"`
	Node          string          `json:"node"`
	Status        Status          `json:"status" jsonschema:"enum=starting,enum=running,enum=stopping,enum=stopped,enum=crashed,enum=unknown"`
	PID           int             `json:"pid"`
	StartedAt     time.Time       `json:"startedAt"`
	LastHeartbeat *time.Time      `json:"lastHeartbeat" jsonschema:"nullable"`
	Metadata      json.RawMessage `json:"metadata" jsonschema:"type=object"`
	Restarts      int             `json:"restarts"`
	ExitCode      *int            `json:"exitCode" jsonschema:"nullable"`
	// EndedAt is when the process exited; absent while it runs.
	EndedAt *time.Time `json:"endedAt,omitempty"`
	// Error says why a crashed process crashed.
	Error string `json:"error,omitempty"`
	// Connected reports whether the child's socket connection is open.
	Connected bool `json:"connected"`
	// SocketPath or TCPPort is where the child connects.
	SocketPath string `json:"socketPath,omitempty"`
	TCPPort    int    `json:"tcpPort,omitempty"`
	// Stale is true while the child is overdue with its heartbeat.
	Stale bool `json:"stale"`
	// Stats is the node's last sample of the process tree.
	Stats *wire.Stats `json:"stats,omitempty"`
	// RestartPending is true while an auto-restart of this crashed process
	// waits out its backoff.
	RestartPending bool `json:"restartPending,omitempty"`
	// Instance is the stable name of a process the node keeps running
	// (a definition's instances): <name>/<k>. Empty for one spawned on
	// demand.
	Instance string `json:"instance,omitempty"`
	// Service is the cluster service whose instance this is, if any.
	Service string `json:"service,omitempty"`
	// Held: this instance reached its restart limit (or, a node-local
	// one, was stopped by an operator), and the node does not replace it
	// until it is restarted.
	Held bool `json:"held,omitempty"`
}

// IDPrefix starts every process id.
const IDPrefix = "proc_"

// IDLength is the length of a process id: IDPrefix and 16 characters of
// a-z 0-9.
const IDLength = len(IDPrefix) + 16

// IsID reports whether s has the form of a process id (it may name no
// process).
func IsID(s string) bool {
	if len(s) != IDLength || s[:len(IDPrefix)] != IDPrefix {
		return false
	}
	for i := len(IDPrefix); i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// ValidToken reports whether s can be a subject token, as node ids,
// process and event names and labels must be: 1 to 64 characters of
// A-Z a-z 0-9 _ -.
func ValidToken(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
