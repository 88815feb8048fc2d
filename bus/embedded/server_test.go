package embedded_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
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
		// inProcess: the node's connection skips TLS; otherwise it is
		// over TCP.
		inProcess bool
	}{
		{"loopback", embedded.Config{}, nil, false},
		{"every address", embedded.Config{Listen: "0.0.0.0:-1", Insecure: true}, nil, false},
		{"users", embedded.Config{Users: []embedded.User{{Name: "eve", Password: "eve-secret", Role: bus.RoleViewer}}},
			[]nats.Option{nats.UserInfo("eve", "eve-secret"), nats.CustomInboxPrefix(bus.InboxPrefix("eve"))}, false},
		{"tls with client certificates", embedded.Config{TLS: &embedded.TLS{Cert: cert, Key: key, CA: ca.Cert, Verify: true}}, tlsOpts, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logged warnings
			tc.cfg.Logger = slog.New(&logged)
			srv := testnode.StartServerWith(t, tc.cfg)
			nc, err := srv.Connect("n1")
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			if addr := nc.ConnectedAddr(); (addr == "pipe") != tc.inProcess {
				t.Errorf("the node connected to %q, want in process %v", addr, tc.inProcess)
			}
			if r, ok := logged.find("over TCP"); ok {
				t.Errorf("warned %q", r.Message)
			}
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

// A node that cannot reach its server over TCP (here its dialer fails; on
// a host, a listener it cannot reach itself on) connects in process all
// the same, and warns with TCP's error: nothing else would tell that the
// node runs slower, and that clients on this host may not reach the
// listener either.
func TestNodeFallsBackInProcessAndSaysWhy(t *testing.T) {
	var logged warnings
	srv := testnode.StartServerWith(t, embedded.Config{Logger: slog.New(&logged)})
	errDial := errors.New("no route to the listener")
	nc, err := srv.Connect("n1", nats.SetCustomDialer(failingDialer{errDial}))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if addr := nc.ConnectedAddr(); addr != "pipe" {
		t.Errorf("the node connected to %q, want in process (pipe)", addr)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	r, ok := logged.find("over TCP")
	if !ok {
		t.Fatalf("no warning of the fallback; logged: %v", logged.messages())
	}
	attrs := map[string]slog.Value{}
	r.Attrs(func(a slog.Attr) bool { attrs[a.Key] = a.Value; return true })
	if err, _ := attrs["err"].Any().(error); !errors.Is(err, errDial) {
		t.Errorf("warning %q with err %v, want the dialer's error", r.Message, attrs["err"])
	}
	if url := attrs["url"].String(); !strings.HasPrefix(url, "nats://127.0.0.1:") {
		t.Errorf("warning %q with url %q, want the listener's", r.Message, url)
	}
	if name := attrs["connection"].String(); name != "n1" {
		t.Errorf("warning %q with connection %q, want n1", r.Message, name)
	}
}

// A server that refuses the node's user over TCP is not asked again in
// process (where the refusal can show only as a closed pipe, up to 10 s
// later): Connect fails at once, with the server's reason.
func TestNodeRefusedOverTCPIsRefused(t *testing.T) {
	var logged warnings
	srv := testnode.StartServerWith(t, embedded.Config{Logger: slog.New(&logged),
		Users: []embedded.User{{Name: "eve", Password: "eve-secret", Role: bus.RoleViewer}}})
	nc, err := srv.Connect("n1", nats.UserInfo("eve", "wrong"))
	if err == nil {
		nc.Close()
		t.Fatal("the node connected with a wrong password")
	}
	if !errors.Is(err, nats.ErrAuthorization) || !strings.Contains(err.Error(), "at nats://127.0.0.1:") || strings.Contains(err.Error(), "wrong") {
		t.Errorf("error %q, want an authorization violation at the listener, without the password", err)
	}
	if r, ok := logged.find("over TCP"); ok {
		t.Errorf("a fallback was logged although none happened: %q", r.Message)
	}
}

type failingDialer struct{ err error }

func (d failingDialer) Dial(string, string) (net.Conn, error) { return nil, d.err }

// warnings is a slog.Handler that keeps the records of level Warn and
// above.
type warnings struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (w *warnings) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (w *warnings) WithAttrs([]slog.Attr) slog.Handler           { return w }
func (w *warnings) WithGroup(string) slog.Handler                { return w }
func (w *warnings) Handle(_ context.Context, r slog.Record) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.recs = append(w.recs, r.Clone())
	return nil
}

// find returns the first record whose message contains s.
func (w *warnings) find(s string) (slog.Record, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, r := range w.recs {
		if strings.Contains(r.Message, s) {
			return r, true
		}
	}
	return slog.Record{}, false
}

func (w *warnings) messages() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, r := range w.recs {
		out = append(out, r.Message)
	}
	return out
}
