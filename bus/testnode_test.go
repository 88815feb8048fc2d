package bus_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/corral-run/corral/bus"
	"github.com/corral-run/corral/internal/testnode"
	"github.com/corral-run/corral/node"
)

// testNode is one real node: embedded NATS, control service, supervisor.
type testNode = testnode.Node

// startTestNode starts node n1 defining "sleeper" (sleep 30), on an
// embedded server of its own without JetStream, heartbeat every 100ms, and
// stops everything when the test ends.
func startTestNode(t *testing.T) *testNode {
	t.Helper()
	return startTestNodeOn(t, testnode.StartServer(t, false), "n1", bus.ServiceConfig{})
}

// startTestNodeOn starts node id on srv, with the service configured as
// cfg says (NodeID is id; HeartbeatInterval defaults to 100ms).
func startTestNodeOn(t *testing.T, srv *server.Server, id string, cfg bus.ServiceConfig) *testNode {
	t.Helper()
	return testnode.Start(t, srv, testnode.Spec{ID: id, Service: cfg, Definitions: []node.Definition{testnode.Sleeper}})
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}
