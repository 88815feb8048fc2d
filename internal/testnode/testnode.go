// Package testnode starts real nodes inside a test process: an embedded
// NATS server, the control service and the supervisor, wired as corrald
// wires them, torn down when the test ends. It also holds what the tests
// of the bus packages and corralctl share around them: a client
// connection, a relay of their own, a context with a deadline, and a check
// of a message against the catalogue's schemas. Each is defined here once.
package testnode

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus"
	"github.com/corral-run/corral/bus/catalog"
	"github.com/corral-run/corral/bus/control"
	"github.com/corral-run/corral/bus/embedded"
	"github.com/corral-run/corral/bus/registry"
	"github.com/corral-run/corral/bus/relay"
	"github.com/corral-run/corral/bus/service"
	"github.com/corral-run/corral/node"
	"github.com/corral-run/corral/schema"
)

// Sleeper is a definition most tests need: sleep 30.
var Sleeper = node.Definition{Name: "sleeper", Command: "sleep", Args: []string{"30"}, StopTimeout: time.Second}

// Node is one real node.
type Node struct {
	URL  string // the server's client URL
	Srv  *embedded.Server
	Conn *nats.Conn // the node's own connection
	Svc  *service.Service
	Sup  *node.Supervisor
	Ctl  *control.Control // on a connection of its own, as a client would be

	detached bool // the supervisor let go of its children: see Die
}

// StartServer starts an embedded NATS server on a random loopback port,
// with JetStream or not, shut down when the test ends.
func StartServer(t testing.TB, jetstream bool) *embedded.Server {
	t.Helper()
	return StartServerWith(t, embedded.Config{JetStream: jetstream})
}

// StartServerWith starts an embedded NATS server configured by cfg
// (Listen defaults to a random loopback port, Logger to nothing, and
// JetStream stores in a temporary directory), shut down when the test
// ends.
func StartServerWith(t testing.TB, cfg embedded.Config) *embedded.Server {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:-1"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.JetStream && cfg.StoreDir == "" {
		cfg.StoreDir = t.TempDir()
	}
	srv, err := embedded.Start(cfg)
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
	Service service.Config
	// JetStream: the node keeps its events in the stream (durable acks)
	// and its record in the node registry (and, with
	// Service.Relay.StatsStore, the latest stats); the server must have
	// JetStream.
	JetStream bool
	// StatsInterval is the supervisor's sampling interval (default 5s).
	StatsInterval time.Duration
	// MaxProcesses is the supervisor's capacity (default: its default).
	MaxProcesses int
	// EventWindow is the supervisor's per-connection bound of events
	// waiting for storage (default: its default).
	EventWindow int
	// Definitions are the node's definitions (default: Sleeper).
	Definitions []node.Definition
}

// StartOne starts node n1 defining Sleeper, on an embedded server of its
// own without JetStream, heartbeat every 100ms; it is stopped when the
// test ends.
func StartOne(t testing.TB) *Node {
	t.Helper()
	return Start(t, StartServer(t, false), Spec{ID: "n1"})
}

// Context is a context that ends with the test, or after 10 s.
func Context(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// Start starts a node on srv; it is stopped when the test ends.
func Start(t testing.TB, srv *embedded.Server, spec Spec) *Node {
	t.Helper()
	nc, err := srv.Connect(spec.ID)
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
		cfg.Relay = relay.Config{Durable: true, Stream: &relay.StreamConfig{}, StatsStore: cfg.Relay.StatsStore}
		cfg.Registry = &registry.Config{}
	}
	svc := service.New(nc, cfg)
	t.Cleanup(func() {
		if err := svc.Close(); err != nil {
			t.Errorf("closing service: %v", err)
		}
	})
	if spec.JetStream {
		if err := svc.Relay().EnsureStream(t.Context()); err != nil {
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
		Reporter: svc, StatsInterval: spec.StatsInterval, MaxProcesses: spec.MaxProcesses, EventWindow: spec.EventWindow})
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
	if spec.Definitions == nil {
		spec.Definitions = []node.Definition{Sleeper}
	}
	for _, d := range spec.Definitions {
		if err := sup.Define(d); err != nil {
			t.Fatal(err)
		}
	}
	if err := svc.Serve(sup); err != nil {
		t.Fatal(err)
	}
	cc, err := srv.Connect(spec.ID + " control") // as the node's own user when the server has users
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cc.Close)
	n.Ctl = control.New(cc)
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

// Connect connects to url as a client would; the connection is closed when
// the test ends.
func Connect(t testing.TB, url string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// NewRelay returns a relay of node n1 on nc, closed (with a deadline) when
// the test ends.
func NewRelay(t testing.TB, nc *nats.Conn, cfg relay.Config) *relay.Relay {
	t.Helper()
	cfg.NodeID = "n1"
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	}
	r := relay.New(nc, cfg)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := r.Close(ctx); err != nil {
			t.Errorf("closing relay: %v", err)
		}
	})
	return r
}

var catalogSchemas = sync.OnceValues(func() (map[string]*schema.Schema, error) {
	out := map[string]*schema.Schema{}
	for _, ns := range catalog.All() {
		s, err := schema.Compile(ns.Name, ns.Schema)
		if err != nil {
			return nil, err
		}
		out[ns.Name] = s
	}
	return out, nil
})

// CheckSchema fails the test unless data validates against the schema the
// catalogue (package bus/catalog) has under name.
func CheckSchema(t testing.TB, name string, data []byte) {
	t.Helper()
	schemas, err := catalogSchemas()
	if err != nil {
		t.Fatalf("cannot compile the catalogue: %v", err)
	}
	s := schemas[name]
	if s == nil {
		t.Errorf("no schema named %q", name)
		return
	}
	if err := s.Validate(data); err != nil {
		t.Errorf("%s: %s does not validate: %v", name, data, err)
	}
}

// StalledStream creates the event stream capturing nothing of process.>:
// attempts to store events go unanswered until fix makes it capture the
// history's subjects.
func StalledStream(t testing.TB, url string) (fix func()) {
	t.Helper()
	js, err := jetstream.New(Connect(t, url))
	if err != nil {
		t.Fatal(err)
	}
	ctx := Context(t)
	cfg := jetstream.StreamConfig{Name: bus.StreamName, Subjects: []string{"stalled.>"}, Duplicates: bus.DuplicateWindow}
	if _, err := js.CreateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	return func() {
		cfg.Subjects = bus.HistorySubjects()
		if _, err := js.UpdateStream(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}
}

// Spawn spawns name on n through its Control, failing the test on error.
func Spawn(t testing.TB, n *Node, name string) api.ManagedProcess {
	t.Helper()
	mp, err := n.Ctl.Spawn(Context(t), "", name, api.SpawnRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return mp
}
