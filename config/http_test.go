package config

import (
	"reflect"
	"strings"
	"testing"

	"github.com/corral-run/corral/bus"
)

func TestHTTPSettings(t *testing.T) {
	t.Parallel()
	if c := mustParse(t, ""); !reflect.DeepEqual(c.HTTP, HTTPConfig{Listen: DefaultHTTPListen}) {
		t.Errorf("default HTTP = %+v", c.HTTP)
	}
	if c := mustParse(t, "[http]\nlisten = \"\"\n"); c.HTTP.Listen != "" {
		t.Errorf("listen = \"\" gives %q, want the gateway off", c.HTTP.Listen)
	}
	c := mustParse(t, `
[nats]
monitor = "127.0.0.1:8222"
[nats.websocket]
listen = "0.0.0.0:8443"
[nats.websocket.tls]
cert = "/c.pem"
key = "/k.pem"
[http]
listen = "0.0.0.0:4280"
insecure = true
[[http.tokens]]
token = "0123456789abcdef-operator"
role = "operator"
[[http.tokens]]
token = "0123456789abcdef-viewer"
role = "viewer"
[http.tls]
cert = "/c.pem"
key = "/k.pem"
`)
	want := HTTPConfig{Listen: "0.0.0.0:4280", Insecure: true, TLS: &TLSConfig{Cert: "/c.pem", Key: "/k.pem"}, Tokens: []HTTPToken{
		{Token: "0123456789abcdef-operator", Role: bus.RoleOperator}, {Token: "0123456789abcdef-viewer", Role: bus.RoleViewer}}}
	if !reflect.DeepEqual(c.HTTP, want) {
		t.Errorf("HTTP = %+v\nwant   %+v", c.HTTP, want)
	}
	if c.NATS.Monitor != "127.0.0.1:8222" || c.NATS.WebSocket.Listen != "0.0.0.0:8443" || c.NATS.WebSocket.TLS == nil || c.NATS.WebSocket.TLS.Key != "/k.pem" {
		t.Errorf("NATS monitor %q, websocket %+v", c.NATS.Monitor, c.NATS.WebSocket)
	}
	env := mustParse(t, "", "CORRAL_HTTP_LISTEN=127.0.0.1:0", "CORRAL_HTTP_INSECURE=true", "CORRAL_NATS_MONITOR=127.0.0.1:8333")
	if env.HTTP.Listen != "127.0.0.1:0" || !env.HTTP.Insecure || env.NATS.Monitor != "127.0.0.1:8333" {
		t.Errorf("from the environment: %+v, monitor %q", env.HTTP, env.NATS.Monitor)
	}
}

func TestHTTPSettingErrors(t *testing.T) {
	t.Parallel()
	tok := func(extra string) string { return "[[http.tokens]]\n" + extra }
	for _, tc := range []struct {
		doc, key, msg string
		env           []string
	}{
		{"[http]\nlisten = \"4280\"\n", "http.listen", `invalid address "4280"`, nil},
		{"[http]\nlisten = \"127.0.0.1:70000\"\n", "http.listen", `invalid port "70000"`, nil},
		{"", "http.listen", `(from CORRAL_HTTP_LISTEN): invalid address "nowhere"`, []string{"CORRAL_HTTP_LISTEN=nowhere"}},
		{"[http]\ninsecure = \"yes\"\n", "http.insecure", `must be a boolean`, nil},
		{"[http]\nport = 80\n", "http.port", `unknown key "http.port"`, nil},
		{"[http.tls]\ncert = \"/c.pem\"\n", "http.tls.key", "is required with tls.cert", nil},
		{"[http.tls]\nca = \"/ca.pem\"\n", "http.tls.ca", `unknown key "http.tls.ca"`, nil},
		{tok("role = \"viewer\"\n"), "http.tokens[0].token", "is required", nil},
		{tok("token = \"short\"\nrole = \"viewer\"\n"), "http.tokens[0].token", "is 5 characters, fewer than 16", nil},
		{tok("token = \"0123456789abcdef 01\"\nrole = \"viewer\"\n"), "http.tokens[0].token", "printable ASCII without spaces", nil},
		{tok("token = \"0123456789abcdef\"\n"), "http.tokens[0].role", "is required", nil},
		{tok("token = \"0123456789abcdef\"\nrole = \"node\"\n"), "http.tokens[0].role", `invalid role "node" (expected viewer or operator)`, nil},
		{tok("token = \"0123456789abcdef\"\nrole = \"viewer\"\nname = \"x\"\n"), "http.tokens[0].name", `unknown key`, nil},
		{tok("token = 1234\nrole = \"viewer\"\n"), "http.tokens[0].token", `must be a string`, nil},
		{tok("token = \"0123456789abcdef\"\nrole = \"viewer\"\n") + tok("token = \"0123456789abcdef\"\nrole = \"operator\"\n"), "http.tokens[1].token", "the same as an earlier token's", nil},
		{"[http]\ntokens = \"x\"\n", "http.tokens", "must be an array of tables", nil},
		{"[nats]\nmonitor = \"127.0.0.1:0\"\n", "nats.monitor", `invalid port "0"`, nil},
		{"[nats]\nurl = \"nats://a:4222\"\nmonitor = \"127.0.0.1:8222\"\n", "nats.monitor", "configures the embedded server", nil},
		{"[nats.websocket]\nlisten = \"x\"\n", "nats.websocket.listen", "invalid address", nil},
		{"[nats.websocket.tls]\ncert = \"/c\"\nkey = \"/k\"\n", "nats.websocket.listen", "is required with [nats.websocket.tls]", nil},
		{"[nats.websocket.tls]\ncert = \"/c\"\n", "nats.websocket.tls.key", "is required with tls.cert", nil},
		{"[nats]\nurl = \"nats://a:4222\"\n[nats.websocket]\nlisten = \"127.0.0.1:8443\"\n", "nats.websocket.listen", "configures the embedded server", nil},
	} {
		_, err := Parse(strings.NewReader(tc.doc), environ(tc.env...))
		wantKeyError(t, err, tc.key, tc.msg)
	}
}
