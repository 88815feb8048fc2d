// Package testnode starts real nodes inside a test process: an embedded
// NATS server, the control service and the supervisor, wired as corrald
// wires them, torn down when the test ends. The bus and corralctl tests
// share it.
package testnode

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/corral-run/corral/bus"
	"github.com/corral-run/corral/node"
)

// Sleeper is a definition most tests need: sleep 30.
var Sleeper = node.Definition{Name: "sleeper", Command: "sleep", Args: []string{"30"}, StopTimeout: time.Second}

// Node is one real node.
type Node struct {
	URL  string // the server's client URL
	Srv  *server.Server
	Conn *nats.Conn // the node's own connection
	Svc  *bus.Service
	Sup  *node.Supervisor
	Ctl  *bus.Control // on a connection of its own, as a client would be

	detached bool // the supervisor let go of its children: see Die
}

// StartServer starts an embedded NATS server on a random loopback port,
// with JetStream or not, shut down when the test ends.
func StartServer(t testing.TB, jetstream bool) *server.Server {
	t.Helper()
	cfg := bus.ServerConfig{Listen: "127.0.0.1:-1", Logger: slog.New(slog.DiscardHandler)}
	if jetstream {
		cfg.JetStream, cfg.StoreDir = true, t.TempDir()
	}
	srv, err := bus.StartServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	return srv
}

// Spec describes a node Start starts.
type Spec struct {
	ID string
	// Service is the control service's configuration; NodeID is set from
	// ID, HeartbeatInterval defaults to 100ms, Logger to the test's output.
	Service bus.ServiceConfig
	// JetStream: the node keeps its events in the stream (durable acks)
	// and its record in the node registry; the server must have JetStream.
	JetStream bool
	// StatsInterval is the supervisor's sampling interval (default 5s).
	StatsInterval time.Duration
	Definitions   []node.Definition
}

// Start starts a node on srv; it is stopped when the test ends.
func Start(t testing.TB, srv *server.Server, spec Spec) *Node {
	t.Helper()
	nc, err := bus.ConnectInProcess(srv, spec.ID)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	cfg := spec.Service
	cfg.NodeID = spec.ID
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = 100 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	}
	if spec.JetStream {
		cfg.Relay = bus.RelayConfig{Durable: true, Stream: &bus.StreamConfig{}}
		cfg.Registry = &bus.RegistryConfig{}
	}
	svc := bus.NewService(nc, cfg)
	t.Cleanup(func() {
		if err := svc.Close(); err != nil {
			t.Errorf("closing service: %v", err)
		}
	})
	if spec.JetStream {
		if err := svc.EnsureStream(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	// Unix socket paths must fit in 108 bytes: t.TempDir() can be too long.
	sockDir, err := os.MkdirTemp("", "c")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	sup, err := node.New(node.Config{NodeID: spec.ID, SocketDir: sockDir, LogDir: filepath.Join(t.TempDir(), "log"),
		Reporter: svc, StatsInterval: spec.StatsInterval})
	if err != nil {
		t.Fatal(err)
	}
	n := &Node{URL: srv.ClientURL(), Srv: srv, Conn: nc, Svc: svc, Sup: sup}
	t.Cleanup(func() {
		if n.detached {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := sup.Close(ctx); err != nil {
			t.Errorf("closing supervisor: %v", err)
		}
	})
	for _, d := range spec.Definitions {
		if err := sup.Define(d); err != nil {
			t.Fatal(err)
		}
	}
	if err := svc.Serve(sup); err != nil {
		t.Fatal(err)
	}
	cc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cc.Close)
	n.Ctl = bus.NewControl(cc)
	return n
}

// Die takes the node off the bus as a crash would, its children left
// running; they are killed when the test ends.
func (n *Node) Die(t testing.TB) {
	t.Helper()
	procs := n.Sup.GetAll()
	n.detached = true
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := n.Sup.Detach(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, p := range procs {
			_ = syscall.Kill(-p.PID, syscall.SIGKILL)
		}
	})
	if err := n.Svc.Close(); err != nil {
		t.Fatal(err)
	}
}
