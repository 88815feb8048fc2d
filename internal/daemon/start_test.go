package daemon_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/corral-run/corral/bus/control"
	"github.com/corral-run/corral/config"
	"github.com/corral-run/corral/internal/daemon"
	"github.com/corral-run/corral/internal/testchild"
)

// quiet is a log level nothing is logged at: benchmarks log nowhere.
const quiet = slog.LevelError + 4

// parseConfig parses a node's configuration, failing the test on error.
//
// Without an [http] table the node starts no HTTP gateway: tests run in
// parallel, and the default address is the same for all.
func parseConfig(tb testing.TB, toml string) *config.Config {
	tb.Helper()
	cfg, err := config.Parse(strings.NewReader(toml), nil)
	if err != nil {
		tb.Fatal(err)
	}
	if !strings.Contains(toml, "[http]") {
		cfg.HTTP.Listen = ""
	}
	if cfg.NATS.URL == "" && cfg.NATS.Listen == config.DefaultNATSListen && !strings.Contains(toml, config.DefaultNATSListen) {
		cfg.NATS.Listen = "127.0.0.1:0" // a port of its own: something may use the default one
	}
	return cfg
}

// startDaemon starts a whole node with cfg, logging to the test's output
// from level up, and closes it as its configuration says (node.shutdown)
// when the test ends; a test may close it earlier.
func startDaemon(tb testing.TB, cfg *config.Config, level slog.Level) *daemon.Daemon {
	tb.Helper()
	logger := slog.New(slog.NewTextHandler(tb.Output(), &slog.HandlerOptions{Level: level})).With("test_node", cfg.Node.ID)
	d, err := daemon.Start(cfg, logger)
	if err != nil {
		tb.Fatalf("start node %s: %v", cfg.Node.ID, err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := d.Close(ctx); err != nil {
			tb.Errorf("close node %s: %v", cfg.Node.ID, err)
		}
	})
	return d
}

// A node whose configuration was built in code, not read from a file,
// refuses a reload as having nothing to read again.
func TestReloadWithoutAFileIsRefused(t *testing.T) {
	cfg := parseConfig(t, fmt.Sprintf("[node]\nid = \"n1\"\ndata_dir = %q\n", testchild.ShortTempDir(t)))
	d := startDaemon(t, cfg, slog.LevelError)
	res, err := control.New(d.Conn()).Reload(t.Context(), "n1")
	if !errors.Is(err, control.ErrNotFound) || len(res) != 1 || !errors.Is(res[0].Err, control.ErrNotFound) || !strings.Contains(res[0].Error, "no configuration to reload") {
		t.Errorf("reload: %+v, %v, want 404: no configuration to reload", res, err)
	}
}
