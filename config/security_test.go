package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/corral-run/corral/bus"
)

func TestUsersAndTLS(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"node.pem", "node-key.pem", "ca.pem"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c := mustParse(t, `
[nats]
listen = "0.0.0.0:4222"
[[nats.users]]
user = "ops"
password = "$2a$11$W2bm5kUmDnp3w0VoP7Cq8e3cyPzSgjvgvOUpc1KqOKbYR2e7vs7cO"
role = "operator"
[[nats.users]]
user = "eve"
password = "plain"
role = "viewer"
[[nats.users]]
nkey = "UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4"
role = "node"
[nats.tls]
cert = "`+dir+`/node.pem"
key = "`+dir+`/node-key.pem"
ca = "`+dir+`/ca.pem"
verify = true
[nats.cluster]
listen = "0.0.0.0:6222"
routes = ["nats://10.0.0.2:6222"]
user = "route"
password = "route-secret"
[nats.cluster.tls]
cert = "`+dir+`/node.pem"
key = "`+dir+`/node-key.pem"
ca = "`+dir+`/ca.pem"
verify = true
`)
	n := c.NATS
	if len(n.Users) != 3 || n.Users[0] != (User{Name: "ops", Password: n.Users[0].Password, Role: bus.RoleOperator}) ||
		n.Users[0].PlainPassword() || !n.Users[1].PlainPassword() || n.Users[2].Nkey == "" || n.Users[2].Role != bus.RoleNode {
		t.Errorf("users = %+v", n.Users)
	}
	if n.TLS == nil || !n.TLS.Verify || n.TLS.CA != dir+"/ca.pem" {
		t.Errorf("tls = %+v", n.TLS)
	}
	if n.Cluster.User != "route" || n.Cluster.Password != "route-secret" || n.Cluster.TLS == nil || !n.Cluster.TLS.Verify {
		t.Errorf("cluster = %+v", n.Cluster)
	}

	ext := mustParse(t, "[nats]\nurl = \"nats://a:4222\"\nuser = \"n1\"\n", "CORRAL_NATS_PASSWORD=from-env")
	if ext.NATS.Client.User != "n1" || ext.NATS.Client.Password != "from-env" {
		t.Errorf("client auth = %+v", ext.NATS.Client)
	}
}

func TestSecurityErrors(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{"[[nats.users]]\nuser = \"ops\"\npassword = \"x\"\n", "nats.users[0].role is required"},
		{"[[nats.users]]\nuser = \"ops\"\npassword = \"x\"\nrole = \"admin\"\n", `nats.users[0].role: invalid role "admin"`},
		{"[[nats.users]]\nuser = \"ops\"\nrole = \"viewer\"\n", "nats.users[0].password is required"},
		{"[[nats.users]]\nuser = \"o.ps\"\npassword = \"x\"\nrole = \"viewer\"\n", `invalid user name "o.ps"`},
		{"[[nats.users]]\nnkey = \"SUAXYZ\"\nrole = \"viewer\"\n", "is not a user's public nkey"},
		{"[[nats.users]]\nuser = \"a\"\npassword = \"x\"\nrole = \"viewer\"\nflavour = \"x\"\n", `unknown key "nats.users[0].flavour"`},
		{"[[nats.users]]\nuser = \"a\"\npassword = \"x\"\nrole = \"viewer\"\n[[nats.users]]\nuser = \"a\"\npassword = \"y\"\nrole = \"node\"\n", `user "a" is given twice`},
		{"[nats]\nurl = \"nats://a:4222\"\n[[nats.users]]\nuser = \"a\"\npassword = \"x\"\nrole = \"viewer\"\n", "nats.users: configures the embedded server"},
		{"[nats]\nuser = \"n1\"\npassword = \"x\"\n", "nats.user: signs the node in to external servers, but nats.url is empty"},
		{"[nats]\nurl = \"nats://a:4222\"\npassword = \"x\"\n", "nats.user: is required with nats.password"},
		{"[nats]\nurl = \"nats://a:4222\"\nuser = \"u\"\ntoken = \"t\"\n", "give one way to sign in"},
		{"[nats.tls]\nkey = \"/k\"\n", "nats.tls.cert: is required with tls.key"},
		{"[nats.tls]\nca = \"/nonexistent/ca.pem\"\n", "nats.tls.cert: is required: the embedded server presents a certificate"},
		{"[nats.cluster]\nlisten = \"0.0.0.0:6222\"\nroutes = [\"nats://a:6222\"]\nuser = \"r\"\n", "nats.cluster.password: is required with nats.cluster.user"},
		{"[nats.cluster.tls]\nflavour = 1\n", `unknown key "nats.cluster.tls.flavour"`},
		{"[nats]\nurl = \"nats://a:4222\"\ninsecure = true\n", "nats.insecure: configures the embedded server"},
	} {
		_, err := Parse(strings.NewReader(tc.doc), environ())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.doc, err, tc.want)
		}
	}
}
