package node

import (
	"encoding/json"
	"errors"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/client/wire"
)

// SpawnOptions are per-spawn overrides.
type SpawnOptions struct {
	// Metadata is handed to the child as DONKEYLABS_METADATA. It must be a
	// JSON object (or empty, meaning {}).
	Metadata json.RawMessage `json:"metadata,omitempty" jsonschema:"type=object"`
	// Env is merged over the definition's env.
	Env map[string]string `json:"env,omitempty"`
	// Cwd overrides the definition's working directory.
	Cwd string `json:"cwd,omitempty"`
	// Instance makes the process an instance (instances.go): <name>/<k>,
	// never two at once on the node, restarted on every exit.
	Instance string `json:"instance,omitempty"`
	// Service is the cluster service whose instance it is (Instance is
	// then <service>/<k>).
	Service string `json:"service,omitempty"`
}

// Errors returned by the supervisor. Test with errors.Is. Every error the
// supervisor returns for a request is of one of the kinds of package api
// (api.ErrInvalid, api.ErrNotFound, api.ErrConflict; ErrClosed is of
// none: an internal error), and reads as a sentence that starts with what
// could not be done: `cannot define "enc": no command`.
var (
	ErrNotFound     = api.ErrNotFound
	ErrInvalid      = api.ErrInvalid
	ErrConflict     = api.ErrConflict
	ErrNotRunning   = api.Errorf(api.ErrConflict, "process is not running")
	ErrNotConnected = api.Errorf(api.ErrConflict, "process has no open connection")
	ErrClosed       = errors.New("supervisor is closed")
)

// MaxMetadataBytes bounds a spawn's metadata: it travels in the child's
// environment (DONKEYLABS_METADATA), which the kernel limits.
const MaxMetadataBytes = 128 << 10

// ValidMetadata checks that raw is empty or a JSON object of at most
// MaxMetadataBytes.
func ValidMetadata(raw json.RawMessage) error {
	if len(raw) == 0 {
		return nil
	}
	if len(raw) > MaxMetadataBytes {
		return api.Errorf(ErrInvalid, "metadata is %d bytes, more than the limit of %d (128 KiB)", len(raw), MaxMetadataBytes)
	}
	if !json.Valid(raw) {
		return api.Errorf(ErrInvalid, "metadata is not valid JSON")
	}
	if !wire.ObjectKeys(raw, func([]byte) {}) {
		return api.Errorf(ErrInvalid, "metadata must be a JSON object, got %s", wire.ValueKind(raw))
	}
	return nil
}
