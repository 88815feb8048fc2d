package daemon

import (
	"io"
	"log/slog"

	"github.com/corral-run/corral/config"
)

// NewLogger builds the node's slog logger from its config.
func NewLogger(w io.Writer, nc config.NodeConfig) *slog.Logger {
	opts := &slog.HandlerOptions{Level: nc.LogLevel}
	if nc.LogFormat == config.LogJSON {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
