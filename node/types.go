package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"time"

	"github.com/corral-run/corral/client/wire"
)

// Status is where a managed process is in its life.
type Status string

// The statuses of DESIGN.md. StatusUnknown is only set by the bus for
// processes whose node is gone.
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

// SpawnOptions are per-spawn overrides.
type SpawnOptions struct {
	// Metadata is handed to the child as DONKEYLABS_METADATA. It must be a
	// JSON object (or empty, meaning {}).
	Metadata json.RawMessage `json:"metadata,omitempty" jsonschema:"type=object"`
	// Env is merged over the definition's env.
	Env map[string]string `json:"env,omitempty"`
	// Cwd overrides the definition's working directory.
	Cwd string `json:"cwd,omitempty"`
}

// ManagedProcess describes one process the node supervises (or supervised).
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
}

// Errors returned by the supervisor. Test with errors.Is.
var (
	ErrNotFound      = errors.New("not found")
	ErrInvalid       = errors.New("invalid")
	ErrConflict      = errors.New("conflict")
	ErrNotRunning    = fmt.Errorf("%w: process is not running", ErrConflict)
	ErrNotConnected  = fmt.Errorf("%w: process has no open connection", ErrConflict)
	ErrClosed        = errors.New("supervisor is closed")
	ErrUnknownSignal = fmt.Errorf("%w: unknown signal", ErrInvalid)
)

var signalNames = map[string]syscall.Signal{
	"SIGTERM": syscall.SIGTERM, "SIGINT": syscall.SIGINT, "SIGKILL": syscall.SIGKILL,
	"SIGHUP": syscall.SIGHUP, "SIGQUIT": syscall.SIGQUIT, "SIGUSR1": syscall.SIGUSR1,
	"SIGUSR2": syscall.SIGUSR2, "SIGSTOP": syscall.SIGSTOP, "SIGCONT": syscall.SIGCONT,
}

// ParseSignal accepts "SIGTERM", "TERM", "term" or a number.
func ParseSignal(s string) (syscall.Signal, error) {
	u := strings.ToUpper(strings.TrimSpace(s))
	if !strings.HasPrefix(u, "SIG") {
		u = "SIG" + u
	}
	if sig, ok := signalNames[u]; ok {
		return sig, nil
	}
	var n int
	if _, err := fmt.Sscanf(s, "%d", &n); err == nil && n > 0 && n < 65 {
		return syscall.Signal(n), nil
	}
	return 0, fmt.Errorf("%w %q (expected a name such as SIGTERM, or a number)", ErrUnknownSignal, s)
}

// SignalName is the inverse of ParseSignal for the signals it knows.
func SignalName(sig syscall.Signal) string {
	for name, s := range signalNames {
		if s == sig {
			return name
		}
	}
	return fmt.Sprintf("%d", int(sig))
}

// ValidMetadata checks that raw is empty or a JSON object.
func ValidMetadata(raw json.RawMessage) error {
	if len(raw) == 0 {
		return nil
	}
	if !json.Valid(raw) {
		return fmt.Errorf("%w: metadata is not valid JSON", ErrInvalid)
	}
	if !wire.ObjectKeys(raw, func([]byte) {}) {
		return fmt.Errorf("%w: metadata must be a JSON object, got %s", ErrInvalid, wire.ValueKind(raw))
	}
	return nil
}
