package embedded_test

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/corral-run/corral/bus"
	"github.com/corral-run/corral/bus/embedded"
	"github.com/corral-run/corral/internal/testnode"
)

// freeAddr is a loopback address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// The monitoring endpoint serves the server's own figures; WebSocket
// clients sign in as the server's users, with their roles.
func TestMonitorAndWebSocket(t *testing.T) {
	monitor, ws := freeAddr(t), freeAddr(t)
	srv := testnode.StartServerWith(t, embedded.Config{Monitor: monitor, WebSocket: embedded.WebSocketConfig{Listen: ws},
		Users: []embedded.User{{Name: "eve", Password: "eve-secret", Role: bus.RoleViewer}}})
	resp, err := http.Get("http://" + monitor + "/varz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"server_id"`) {
		t.Errorf("GET /varz: %d %.200s", resp.StatusCode, body)
	}

	url := "ws://" + ws
	if _, err := nats.Connect(url); err == nil {
		t.Error("a WebSocket client without credentials was let in")
	}
	nc := testnode.Connect(t, url, nats.UserInfo("eve", "eve-secret"), nats.CustomInboxPrefix(bus.InboxPrefix("eve")))
	sub, err := nc.SubscribeSync(bus.SubjectAll)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	self, err := srv.Connect("test") // a viewer may not publish process.>; the node may
	if err != nil {
		t.Fatal(err)
	}
	defer self.Close()
	if err := self.Publish("process.demo.note", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if m, err := sub.NextMsg(5 * time.Second); err != nil || m.Subject != "process.demo.note" {
		t.Errorf("over WebSocket: %v, %v", m, err)
	}
}

func TestMonitorAndWebSocketExposure(t *testing.T) {
	quiet := slog.New(slog.DiscardHandler)
	users := []embedded.User{{Name: "eve", Password: "eve-secret", Role: bus.RoleViewer}}
	for _, tc := range []struct {
		cfg  embedded.Config
		want string
	}{
		{embedded.Config{Monitor: "0.0.0.0:0", Users: users}, "the monitoring listener 0.0.0.0:0 (nats.monitor)"},
		{embedded.Config{WebSocket: embedded.WebSocketConfig{Listen: "127.0.0.1:0"}}, "(nats.websocket.listen) has no users"},
		{embedded.Config{WebSocket: embedded.WebSocketConfig{Listen: "0.0.0.0:0"}, Users: users}, "without TLS"},
	} {
		tc.cfg.Listen, tc.cfg.Logger = "127.0.0.1:-1", quiet
		srv, err := embedded.Start(tc.cfg)
		if err == nil {
			srv.Shutdown()
		}
		if !errors.Is(err, embedded.ErrInsecure) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want ErrInsecure saying %q", tc.cfg, err, tc.want)
		}
		// insecure = true lets it run, named among the open listeners.
		tc.cfg.Insecure = true
		srv, err = embedded.Start(tc.cfg)
		if err != nil {
			t.Errorf("%+v with insecure: %v", tc.cfg, err)
			continue
		}
		if open := fmt.Sprint(srv.Insecure()); !strings.Contains(open, "nats.") {
			t.Errorf("insecure listeners: %s", open)
		}
		srv.Shutdown()
		srv.WaitForShutdown()
	}
}
