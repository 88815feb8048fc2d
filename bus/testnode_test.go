package bus_test

import (
	"context"
	"os"
	"path/filepath"
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
}

// startTestNode starts node n1 defining "sleeper" (sleep 30) and stops
// everything when the test ends.
func startTestNode(t *testing.T) *testNode {
	t.Helper()
	srv, err := bus.StartServer(bus.ServerConfig{Listen: "127.0.0.1:-1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	nc, err := bus.ConnectInProcess(srv, "n1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	svc := bus.NewService(nc, bus.ServiceConfig{NodeID: "n1"})
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
	sup, err := node.New(node.Config{NodeID: "n1", SocketDir: sockDir, LogDir: filepath.Join(t.TempDir(), "log"), Reporter: svc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
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
	return &testNode{srv: srv, nc: nc, svc: svc, sup: sup, ctl: bus.NewControl(cc)}
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}
