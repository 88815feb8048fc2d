package config

import (
	"reflect"
	"strings"
	"testing"
)

func TestClusterSettings(t *testing.T) {
	t.Parallel()
	routes := []string{"nats://10.0.0.1:6222", "nats://10.0.0.2:6222", "nats-route://10.0.0.3:6222"}
	tests := []struct {
		name        string
		doc         string
		env         []string
		wantCluster ClusterConfig
		wantLeaf    LeafConfig
		replicas    int
	}{
		{"not clustered by default", "", nil, ClusterConfig{Name: "corral"}, LeafConfig{}, 0},
		{"cluster table", `
[nats.cluster]
name = "prod"
listen = "0.0.0.0:6222"
routes = ["nats://10.0.0.1:6222", "nats://10.0.0.2:6222", "nats-route://10.0.0.3:6222"]`, nil,
			ClusterConfig{Name: "prod", Listen: "0.0.0.0:6222", Routes: routes}, LeafConfig{}, 0},
		{"dotted keys", `nats.cluster.listen = "127.0.0.1:6222"` + "\n" + `nats.cluster.routes = "nats://127.0.0.1:6223"`, nil,
			ClusterConfig{Name: "corral", Listen: "127.0.0.1:6222", Routes: []string{"nats://127.0.0.1:6223"}}, LeafConfig{}, 0},
		{"seed member without JetStream needs no routes", "[nats]\njetstream = false\n[nats.cluster]\nlisten = \"0.0.0.0:6222\"", nil,
			ClusterConfig{Name: "corral", Listen: "0.0.0.0:6222"}, LeafConfig{}, 0},
		{"replicas in a cluster", "[nats]\nstream_replicas = 3\n[nats.cluster]\nlisten = \"0.0.0.0:6222\"\nroutes = [\"nats://10.0.0.2:6222\"]", nil,
			ClusterConfig{Name: "corral", Listen: "0.0.0.0:6222", Routes: []string{"nats://10.0.0.2:6222"}}, LeafConfig{}, 3},
		{"env", "", []string{
			"CORRAL_NATS_CLUSTER_NAME=east",
			"CORRAL_NATS_CLUSTER_LISTEN=10.0.0.1:6222",
			"CORRAL_NATS_CLUSTER_ROUTES= nats://10.0.0.1:6222 ,nats://10.0.0.2:6222,nats-route://10.0.0.3:6222",
		}, ClusterConfig{Name: "east", Listen: "10.0.0.1:6222", Routes: routes}, LeafConfig{}, 0},
		{"env wins over the file", "[nats.cluster]\nlisten = \"0.0.0.0:6222\"\nroutes = [\"nats://a:6222\"]",
			[]string{"CORRAL_NATS_CLUSTER_ROUTES=nats://b:6222,nats://c:6222"},
			ClusterConfig{Name: "corral", Listen: "0.0.0.0:6222", Routes: []string{"nats://b:6222", "nats://c:6222"}}, LeafConfig{}, 0},
		{"leaf node", "[nats.leaf]\nremotes = [\"nats-leaf://hub1:7422\", \"nats-leaf://hub2:7422\"]", nil,
			ClusterConfig{Name: "corral"}, LeafConfig{Remotes: []string{"nats-leaf://hub1:7422", "nats-leaf://hub2:7422"}}, 0},
		{"hub", "[nats.leaf]\nlisten = \"0.0.0.0:7422\"", nil,
			ClusterConfig{Name: "corral"}, LeafConfig{Listen: "0.0.0.0:7422"}, 0},
		{"leaf env", "", []string{"CORRAL_NATS_LEAF_REMOTES=nats-leaf://hub:7422,tls://hub2:7422", "CORRAL_NATS_LEAF_LISTEN=127.0.0.1:7422"},
			ClusterConfig{Name: "corral"}, LeafConfig{Remotes: []string{"nats-leaf://hub:7422", "tls://hub2:7422"}, Listen: "127.0.0.1:7422"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := mustParse(t, tt.doc, tt.env...)
			if !reflect.DeepEqual(c.NATS.Cluster, tt.wantCluster) {
				t.Errorf("Cluster = %#v\nwant      %#v", c.NATS.Cluster, tt.wantCluster)
			}
			if !reflect.DeepEqual(c.NATS.Leaf, tt.wantLeaf) {
				t.Errorf("Leaf = %#v\nwant   %#v", c.NATS.Leaf, tt.wantLeaf)
			}
			if c.NATS.StreamReplicas != tt.replicas {
				t.Errorf("StreamReplicas = %d, want %d", c.NATS.StreamReplicas, tt.replicas)
			}
		})
	}
}

func TestClusterSettingErrors(t *testing.T) {
	t.Parallel()
	const cluster = "[nats.cluster]\nlisten = \"0.0.0.0:6222\"\nroutes = [\"nats://10.0.0.2:6222\"]\n"
	tests := []struct {
		name string
		doc  string
		env  []string
		key  string
		msg  string
	}{
		{"unknown cluster key", "[nats.cluster]\nlisen = \"0.0.0.0:6222\"", nil, "nats.cluster.lisen", `unknown key "nats.cluster.lisen"`},
		{"unknown leaf key", "[nats.leaf]\nremote = \"x\"", nil, "nats.leaf.remote", `unknown key "nats.leaf.remote"`},
		{"cluster not a table", `nats.cluster = "yes"`, nil, "nats.cluster", `must be a table, got string "yes"`},
		{"name not a token", `nats.cluster.name = "my cluster"`, nil, "nats.cluster.name", `invalid cluster name "my cluster"`},
		{"name empty", `nats.cluster.name = ""`, nil, "nats.cluster.name", `invalid cluster name ""`},
		{"listen type", `nats.cluster.listen = 6222`, nil, "nats.cluster.listen", `must be a string, got integer 6222`},
		{"listen without port", `nats.cluster.listen = "0.0.0.0"`, nil, "nats.cluster.listen", `invalid address "0.0.0.0" (expected host:port`},
		{"listen port zero", `nats.cluster.listen = "0.0.0.0:0"`, nil, "nats.cluster.listen", `invalid port "0" in "0.0.0.0:0" (expected 1 to 65535)`},
		{"listen from env", "", []string{"CORRAL_NATS_CLUSTER_LISTEN=:6222"}, "nats.cluster.listen",
			`nats.cluster.listen (from CORRAL_NATS_CLUSTER_LISTEN): invalid address ":6222"`},
		{"routes type", "[nats.cluster]\nlisten = \"0.0.0.0:6222\"\nroutes = [6222]", nil, "nats.cluster.routes", `must be a string or an array of strings`},
		{"route without scheme", "[nats.cluster]\nlisten = \"0.0.0.0:6222\"\nroutes = [\"10.0.0.2:6222\"]", nil, "nats.cluster.routes",
			`invalid URL "10.0.0.2:6222" (expected nats|nats-route://host:port, e.g. nats://10.0.0.2:6222)`},
		{"route without port", "[nats.cluster]\nlisten = \"0.0.0.0:6222\"\nroutes = [\"nats://10.0.0.2\"]", nil, "nats.cluster.routes", `invalid URL "nats://10.0.0.2"`},
		{"route with a client scheme", "[nats.cluster]\nlisten = \"0.0.0.0:6222\"\nroutes = [\"nats-leaf://10.0.0.2:6222\"]", nil, "nats.cluster.routes", `invalid URL "nats-leaf://10.0.0.2:6222"`},
		{"routes from env with an empty element", "[nats.cluster]\nlisten = \"0.0.0.0:6222\"", []string{"CORRAL_NATS_CLUSTER_ROUTES=nats://a:6222,,nats://b:6222"},
			"nats.cluster.routes", `nats.cluster.routes (from CORRAL_NATS_CLUSTER_ROUTES): empty URL`},
		{"routes without listen", "[nats.cluster]\nroutes = [\"nats://10.0.0.2:6222\"]", nil, "nats.cluster.routes", `needs nats.cluster.listen`},
		{"JetStream cluster without routes", "[nats.cluster]\nlisten = \"0.0.0.0:6222\"", nil, "nats.cluster.routes", `a JetStream cluster needs routes`},
		{"cluster with an external server", "[nats]\nurl = \"nats://a:4222\"\n" + cluster, nil, "nats.cluster.listen", `configures the embedded server, but nats.url is set`},
		{"cluster routes with an external server from env", "[nats]\nurl = \"nats://a:4222\"", []string{"CORRAL_NATS_CLUSTER_ROUTES=nats://a:6222"},
			"nats.cluster.routes", `configures the embedded server, but nats.url is set`},
		{"leaf with an external server", "[nats]\nurl = \"nats://a:4222\"\n[nats.leaf]\nremotes = [\"nats-leaf://hub:7422\"]", nil, "nats.leaf.remotes", `configures the embedded server`},
		{"leaf remote scheme", "[nats.leaf]\nremotes = [\"http://hub:7422\"]", nil, "nats.leaf.remotes", `invalid URL "http://hub:7422" (expected nats-leaf|nats|tls|ws|wss://host:port`},
		{"leaf listen", `nats.leaf.listen = "7422"`, nil, "nats.leaf.listen", `invalid address "7422"`},
		{"replicas without a cluster", `nats.stream_replicas = 3`, nil, "nats.stream_replicas", `3 copies need a JetStream cluster ([nats.cluster])`},
		{"replicas negative", `nats.stream_replicas = -1`, nil, "nats.stream_replicas", `-1 is out of range (expected 0 for auto, or 1 to 5)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse(strings.NewReader(tt.doc), environ(tt.env...))
			wantKeyError(t, err, tt.key, tt.msg)
		})
	}
}
