package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/corral-run/corral/config"
)

// Every configuration an operator copies from deploy/ loads, and says what
// its folder says it does.
func TestDeployConfigs(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("../deploy/*/*.toml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no configuration in deploy/")
	}
	for _, path := range files {
		t.Run(filepath.Base(filepath.Dir(path))+"/"+filepath.Base(path), func(t *testing.T) {
			t.Parallel()
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			// The secrets the host files leave to the environment.
			env := map[string]string{}
			if !strings.HasPrefix(filepath.Base(path), "local-") {
				env = map[string]map[string]string{"cluster-embedded": {"CORRAL_NATS_CLUSTER_PASSWORD": "s"},
					"cluster-external": {"CORRAL_NATS_PASSWORD": "s"},
					"leaf":             {"CORRAL_NATS_LEAF_PASSWORD": "s"}}[filepath.Base(filepath.Dir(path))]
			}
			c, err := config.Parse(f, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
			if err != nil {
				t.Fatal(err)
			}
			n := c.NATS
			// Every file signs in and uses TLS: clients, routes, leaf nodes.
			switch {
			case n.Embedded() && len(n.Leaf.Remotes) == 0 && (len(n.Users) == 0 || n.TLS == nil):
				t.Error("clients of the embedded server do not sign in over TLS")
			case n.Embedded() && len(n.Leaf.Remotes) > 0 && !strings.HasPrefix(n.Listen, "127.0.0.1:"):
				t.Error("an edge's own listener is for local clients only")
			case !n.Embedded() && (n.Client.User == "" || n.Client.Password == "" || n.TLS == nil):
				t.Errorf("the node does not sign in over TLS: %+v", n.Client)
			case n.Cluster.Listen != "" && (n.Cluster.User == "" || n.Cluster.TLS == nil || !n.Cluster.TLS.Verify):
				t.Errorf("routes are not authenticated: %+v", n.Cluster)
			case n.Leaf.Listen != "" && (n.Leaf.User == "" || n.Leaf.TLS == nil || !n.Leaf.TLS.Verify):
				t.Errorf("leaf nodes are not authenticated: %+v", n.Leaf)
			case len(n.Leaf.Remotes) > 0 && (n.Leaf.User == "" || n.Leaf.TLS == nil || n.Leaf.TLS.Cert == ""):
				t.Errorf("the leaf connection does not sign in: %+v", n.Leaf)
			}
			// The HTTP gateway is on loopback, or asks for a token over TLS.
			if h := c.HTTP; h.Listen != "" && !strings.HasPrefix(h.Listen, "127.0.0.1:") && (len(h.Tokens) == 0 || h.TLS == nil || h.Insecure) {
				t.Errorf("the HTTP gateway is open: %+v", h)
			}
			switch filepath.Base(filepath.Dir(path)) {
			case "cluster-embedded":
				if !n.Embedded() || n.Cluster.Listen == "" || len(n.Cluster.Routes) != 3 || !n.JetStream {
					t.Errorf("not a member of a three-server embedded JetStream cluster: %+v", n)
				}
			case "cluster-external":
				if n.Embedded() {
					t.Errorf("embeds a server: %+v", n)
				}
			case "leaf":
				if !n.Embedded() || n.Cluster.Listen != "" || (n.Leaf.Listen == "") == (len(n.Leaf.Remotes) == 0) {
					t.Errorf("neither a hub nor a leaf node: %+v", n)
				}
			}
		})
	}
}
