// Package natstest gives tests a NATS server they control from outside the
// node: a real nats-server (from the nats-server module) on a fixed port,
// with JetStream, that a test can stop and start again on the same port
// and store, as an operator restarting the server would. It also reads the
// event stream back, to count what was stored.
package natstest

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/corral-run/corral/bus"
)

// Server is an external nats-server with JetStream. It is shut down when
// the test ends.
type Server struct {
	t    testing.TB
	opts server.Options
	srv  *server.Server
}

// Start starts a server on a free port of 127.0.0.1, storing JetStream
// data in a directory of the test's.
func Start(t testing.TB) *Server { return StartWith(t, "", "") }

// StartWith is Start with a user and password every client must give
// (none when user is empty).
func StartWith(t testing.TB, user, password string) *Server {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	s := &Server{t: t, opts: server.Options{Host: "127.0.0.1", Port: port, NoSigs: true, NoLog: true,
		JetStream: true, StoreDir: t.TempDir(), Username: user, Password: password}}
	s.Restart()
	t.Cleanup(s.Stop)
	return s
}

// URL is the server's client URL; it does not change across restarts.
func (s *Server) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", s.opts.Port) }

// Stop shuts the server down (clients see it go away). Stopping a stopped
// server does nothing.
func (s *Server) Stop() {
	if s.srv != nil {
		s.srv.Shutdown()
		s.srv.WaitForShutdown()
		s.srv = nil
	}
}

// Restart starts the server again on the same port and store, and waits
// until it accepts connections.
func (s *Server) Restart() {
	s.t.Helper()
	if s.srv != nil {
		s.t.Fatal("natstest: the server is running")
	}
	opts := s.opts // NewServer keeps and changes its options
	srv, err := server.NewServer(&opts)
	if err != nil {
		s.t.Fatal(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		s.t.Fatal("natstest: nats-server not ready after 10s")
	}
	s.srv = srv
}

// StoredIDs reads the whole event stream (CORRAL_EVENTS) and counts its
// messages per Nats-Msg-Id.
func StoredIDs(t testing.TB, nc *nats.Conn) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, bus.StreamName)
	if err != nil {
		t.Fatalf("natstest: %v", err)
	}
	ids := map[string]int{}
	last := st.CachedInfo().State.LastSeq
	if last == 0 {
		return ids
	}
	c, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Messages()
	if err != nil {
		t.Fatal(err)
	}
	defer msgs.Stop()
	for {
		m, err := msgs.Next(jetstream.NextContext(ctx))
		if err != nil {
			t.Fatalf("natstest: reading %s: %v", bus.StreamName, err)
		}
		ids[m.Headers().Get(bus.HeaderMsgID)]++
		if md, err := m.Metadata(); err != nil || md.Sequence.Stream >= last {
			return ids
		}
	}
}
