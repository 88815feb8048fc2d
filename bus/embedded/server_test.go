package embedded_test

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/corral-run/corral/bus"
	"github.com/corral-run/corral/bus/embedded"
	"github.com/corral-run/corral/internal/testcert"
	"github.com/corral-run/corral/internal/testnode"
)

// The node reaches its server whatever the server listens on and asks of
// clients (users, TLS with client certificates), and what it publishes
// reaches the server's other clients.
func TestNodeConnects(t *testing.T) {
	ca := testcert.New(t)
	cert, key := ca.Issue(t, "server")
	clientCert, clientKey := ca.Issue(t, "client")
	tlsOpts := []nats.Option{nats.RootCAs(ca.Cert), nats.ClientCert(clientCert, clientKey)}
	for _, tc := range []struct {
		name string
		cfg  embedded.Config
		opts []nats.Option // a client's
	}{
		{"loopback", embedded.Config{}, nil},
		{"every address", embedded.Config{Listen: "0.0.0.0:-1", Insecure: true}, nil},
		{"users", embedded.Config{Users: []embedded.User{{Name: "eve", Password: "eve-secret", Role: bus.RoleViewer}}},
			[]nats.Option{nats.UserInfo("eve", "eve-secret"), nats.CustomInboxPrefix(bus.InboxPrefix("eve"))}},
		{"tls with client certificates", embedded.Config{TLS: &embedded.TLS{Cert: cert, Key: key, CA: ca.Cert, Verify: true}}, tlsOpts},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := testnode.StartServerWith(t, tc.cfg)
			nc, err := srv.Connect("n1")
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			sub := testnode.Connect(t, srv.ClientURL(), tc.opts...)
			got := make(chan *nats.Msg, 1)
			if _, err := sub.ChanSubscribe(bus.SubjectHeartbeat, got); err != nil {
				t.Fatal(err)
			}
			if err := sub.Flush(); err != nil {
				t.Fatal(err)
			}
			if err := nc.Publish(bus.SubjectHeartbeat, []byte(`{}`)); err != nil {
				t.Fatal(err)
			}
			select {
			case <-got:
			case <-time.After(5 * time.Second):
				t.Fatal("the node's message did not arrive")
			}
		})
	}
}
