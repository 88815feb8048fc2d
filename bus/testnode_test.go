package bus_test

import (
	"context"
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

// testNode is one real node: embedded NATS, control service, supervisor.
type testNode struct {
	srv *server.Server
	nc  *nats.Conn
	svc *bus.Service
	sup *node.Supervisor
	ctl *bus.Control // on a connection of its own, as a client would be

	detached bool // the supervisor let go of its children: see die
}

// startTestNode starts node n1 defining "sleeper" (sleep 30), on an
// embedded server of its own without JetStream, heartbeat every 100ms, and
// stops everything when the test ends.
func startTestNode(t *testing.T) *testNode {
	t.Helper()
	srv, err := bus.StartServer(bus.ServerConfig{Listen: "127.0.0.1:-1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	return startTestNodeOn(t, srv, "n1", bus.ServiceConfig{})
}

// startTestNodeOn starts node id on srv, with the service configured as
// cfg says (NodeID is id; HeartbeatInterval defaults to 100ms).
func startTestNodeOn(t *testing.T, srv *server.Server, id string, cfg bus.ServiceConfig) *testNode {
	t.Helper()
	nc, err := bus.ConnectInProcess(srv, id)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	cfg.NodeID = id
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = 100 * time.Millisecond
	}
	svc := bus.NewService(nc, cfg)
	t.Cleanup(func() {
		if err := svc.Close(); err != nil {
			t.Errorf("closing service: %v", err)
		}
	})
	// Unix socket paths must fit in 108 bytes: t.TempDir() can be too long.
	sockDir, err := os.MkdirTemp("", "c")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	sup, err := node.New(node.Config{NodeID: id, SocketDir: sockDir, LogDir: filepath.Join(t.TempDir(), "log"), Reporter: svc})
	if err != nil {
		t.Fatal(err)
	}
	n := &testNode{srv: srv, nc: nc, svc: svc, sup: sup}
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
	if err := sup.Define(node.Definition{Name: "sleeper", Command: "sleep", Args: []string{"30"}, StopTimeout: time.Second}); err != nil {
		t.Fatal(err)
	}
	if err := svc.Serve(sup); err != nil {
		t.Fatal(err)
	}
	cc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cc.Close)
	n.ctl = bus.NewControl(cc)
	return n
}

// die takes the node off the bus as a crash would, its children left
// running; they are killed when the test ends.
func (n *testNode) die(t *testing.T) {
	t.Helper()
	procs := n.sup.GetAll()
	n.detached = true
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := n.sup.Detach(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, p := range procs {
			_ = syscall.Kill(-p.PID, syscall.SIGKILL)
		}
	})
	if err := n.svc.Close(); err != nil {
		t.Fatal(err)
	}
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}
