package config_test

import (
	"os"
	"path/filepath"
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
			c, err := config.Parse(f, nil)
			if err != nil {
				t.Fatal(err)
			}
			n := c.NATS
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
