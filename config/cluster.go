package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/corral-run/corral/api"
)

// ClusterConfig is the [nats.cluster] table: the embedded server joins a
// NATS cluster, and with JetStream on the members form a JetStream
// cluster in which the node id is the server's name (unique in it).
type ClusterConfig struct {
	// Name is the NATS cluster's name, the same on every member. Default
	// "corral".
	Name string
	// Listen is where the embedded server accepts routes from the other
	// members, host:port with a fixed port. Empty (the default): the
	// server is not clustered.
	Listen string
	// Routes are the route URLs of the members ("nats://10.0.0.2:6222").
	// Every member may be given the same full list: a route to itself is
	// ignored. Without JetStream a seed member may list none.
	Routes []string
	// User and Password authenticate routes: a server that does not give
	// them cannot join. TLS ([nats.cluster.tls]) encrypts routes; with
	// verify, a server needs a certificate the CA signed to join.
	User, Password string
	TLS            *TLSConfig
}

// LeafConfig is the [nats.leaf] table: the embedded server as a leaf node
// of a hub, or as a hub.
type LeafConfig struct {
	// Remotes are the hub's leaf-node URLs ("nats-leaf://hub:7422"); the
	// embedded server connects to the hub as a leaf node. Several URLs
	// are servers of the same hub. Empty (the default): no hub.
	Remotes []string
	// Listen is where the embedded server accepts leaf nodes, host:port.
	// Empty (the default): it accepts none.
	Listen string
	// User and Password: a hub asks them of its leaf nodes, a leaf node
	// gives them to its hub. TLS ([nats.leaf.tls]) encrypts leaf
	// connections; with verify, a hub refuses leaf nodes without a
	// certificate the CA signed.
	User, Password string
	TLS            *TLSConfig
}

// DefaultClusterName is the default of nats.cluster.name.
const DefaultClusterName = "corral"

// The route and leaf-node URL schemes nats-server understands.
var (
	routeSchemes = []string{"nats", "nats-route"}
	leafSchemes  = []string{"nats-leaf", "nats", "tls", "ws", "wss"}
)

// subTables are the tables inside [node], [nats] and [http] whose keys are
// settings of their own (nats.cluster.listen): the file's values are read
// from them like those of [nats].
var subTables = map[string]bool{
	"nats.cluster": true, "nats.leaf": true,
	"nats.tls": true, "nats.cluster.tls": true, "nats.leaf.tls": true,
	"nats.websocket": true, "nats.websocket.tls": true, "http.tls": true,
}

// subTableValues checks the keys of a sub-table (see subTables) of the
// file and returns its values for viper.
func subTableValues(key string, val any, kinds map[string]valueKind) (map[string]any, error) {
	table, ok := val.(map[string]any)
	if !ok {
		return nil, &KeyError{Key: key, Err: fmt.Errorf("must be a table, got %s", tomlType(val))}
	}
	values := map[string]any{}
	for _, k := range sortedKeys(table) {
		sub := key + "." + k
		if subTables[sub] {
			inner, err := subTableValues(sub, table[k], kinds)
			if err != nil {
				return nil, err
			}
			values[k] = inner
			continue
		}
		kind, ok := kinds[sub]
		if !ok {
			return nil, &KeyError{Key: sub, Err: ErrUnknownKey}
		}
		if err := checkFileType(kind, table[k]); err != nil {
			return nil, &KeyError{Key: sub, Err: err}
		}
		values[k] = table[k]
	}
	return values, nil
}

// natsTopology reads [nats.cluster] and [nats.leaf] into c and checks
// them against the rest of [nats]: they configure the embedded server,
// so they are refused with nats.url, and stream_replicas above 1 needs a
// cluster.
func (r layers) natsTopology(c *NATSConfig) error {
	var err error
	if c.Cluster.Name = strings.TrimSpace(r.str("nats.cluster.name")); !api.ValidToken(c.Cluster.Name) {
		return r.fail("nats.cluster.name", fmt.Errorf("invalid cluster name %q: must be 1 to 64 characters of A-Z a-z 0-9 _ -", c.Cluster.Name))
	}
	if c.Cluster.Listen, err = r.address("nats.cluster.listen"); err != nil {
		return err
	}
	if c.Cluster.Routes, err = r.urls("nats.cluster.routes", routeSchemes, "nats://10.0.0.2:6222"); err != nil {
		return err
	}
	if c.Leaf.Remotes, err = r.urls("nats.leaf.remotes", leafSchemes, "nats-leaf://hub:7422"); err != nil {
		return err
	}
	if c.Leaf.Listen, err = r.address("nats.leaf.listen"); err != nil {
		return err
	}

	if !c.Embedded() {
		for _, k := range []struct {
			key string
			set bool
		}{
			{"nats.cluster.listen", c.Cluster.Listen != ""}, {"nats.cluster.routes", len(c.Cluster.Routes) > 0},
			{"nats.leaf.remotes", len(c.Leaf.Remotes) > 0}, {"nats.leaf.listen", c.Leaf.Listen != ""},
		} {
			if k.set {
				return r.fail(k.key, errors.New("configures the embedded server, but nats.url is set: the node connects to those servers instead"))
			}
		}
	}
	if len(c.Cluster.Routes) > 0 && c.Cluster.Listen == "" {
		return r.fail("nats.cluster.routes", errors.New("needs nats.cluster.listen: a member must accept the routes of the others"))
	}
	if c.Embedded() && c.JetStream && c.Cluster.Listen != "" && len(c.Cluster.Routes) == 0 {
		return r.fail("nats.cluster.routes", errors.New("a JetStream cluster needs routes: list every member (this node may list itself), or set nats.jetstream = false"))
	}
	if c.Embedded() && c.Cluster.Listen == "" && c.StreamReplicas > 1 {
		return r.fail("nats.stream_replicas", fmt.Errorf("%d copies need a JetStream cluster ([nats.cluster]), the embedded server is on its own: use 0 (auto) or 1", c.StreamReplicas))
	}
	return nil
}

// address reads an optional host:port with a fixed port.
func (r layers) address(key string) (string, error) {
	addr := strings.TrimSpace(r.str(key))
	if addr == "" {
		return "", nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return "", r.fail(key, fmt.Errorf("invalid address %q (expected host:port, e.g. 0.0.0.0:6222)", addr))
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return "", r.fail(key, fmt.Errorf("invalid port %q in %q (expected 1 to 65535)", port, addr))
	}
	return addr, nil
}

// urls reads a list of server URLs (an array of strings, or a
// comma-separated string from the environment), each with a host, a port
// and one of schemes.
func (r layers) urls(key string, schemes []string, example string) ([]string, error) {
	var list []string
	switch val := r.v.Get(key).(type) {
	case string:
		if strings.TrimSpace(val) == "" {
			return nil, nil
		}
		list = strings.Split(val, ",")
	case []any:
		list, _ = stringList(val)
	case []string:
		list = val
	}
	out := make([]string, 0, len(list))
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			return nil, r.fail(key, fmt.Errorf("empty URL in %q", strings.Join(list, ",")))
		}
		u, err := url.Parse(s)
		if err != nil || u.Host == "" || u.Port() == "" || !slices.Contains(schemes, u.Scheme) {
			return nil, r.fail(key, fmt.Errorf("invalid URL %q (expected %s://host:port, e.g. %s)", s, strings.Join(schemes, "|"), example))
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}
