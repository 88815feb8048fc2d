package embedded

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
)

// DefaultClusterName is the NATS cluster name of embedded servers that
// set none.
const DefaultClusterName = "corral"

// ClusterConfig makes an embedded server a member of a NATS cluster: it
// accepts routes from the other members on Listen and connects to every
// member listed in Routes. With JetStream on, the members form a
// JetStream cluster: the server name (Config.Name, the node id)
// must be unique in it.
type ClusterConfig struct {
	// Name is the cluster's name, the same on every member. Default
	// DefaultClusterName.
	Name string
	// Listen is where the server accepts routes, host:port with a fixed
	// port (the other members' Routes name it). Empty: not clustered.
	Listen string
	// Routes are the URLs of the cluster's route listeners, e.g.
	// "nats://10.0.0.2:6222". Every member may be given the same full
	// list: nats-server ignores a route to itself. Empty on a seed member
	// that only accepts routes.
	Routes []string
	// User and Password, when set, authenticate routes: the server asks
	// them of every route that connects, and gives them on the routes it
	// makes (unless a route URL carries its own). A server that does not
	// know them cannot join.
	User, Password string
	// TLS makes routes use TLS; with Verify, a server without a
	// certificate the CA signed cannot join.
	TLS *TLS
}

// Clustered reports whether the server joins a cluster.
func (c ClusterConfig) Clustered() bool { return c.Listen != "" }

// LeafConfig makes an embedded server a leaf node of a hub, or a hub
// that accepts leaf nodes, or both.
type LeafConfig struct {
	// Remotes are the URLs of the hub's leaf-node listeners, e.g.
	// "nats-leaf://hub:7422". Several URLs are servers of the same hub,
	// tried in turn. Empty: the server is no leaf node.
	Remotes []string
	// Listen is where the server accepts leaf nodes, host:port. Empty: it
	// accepts none.
	Listen string
	// User and Password, when set, authenticate leaf nodes: a hub asks
	// them of every leaf node (on Listen), a leaf node gives them to its
	// hub (unless a remote URL carries its own).
	User, Password string
	// TLS makes leaf connections use TLS, both ways; with Verify, a hub
	// refuses a leaf node without a certificate the CA signed.
	TLS *TLS
}

// Members is the number of distinct servers in the cluster as far as its
// configuration tells: the distinct routes, counting this server once
// whether or not it lists itself. It is 1 when the server is not
// clustered. A route counts as this server when it names the route
// listener's address, or its port on a loopback or local interface
// address, or on the host name, when Listen binds every interface; a
// route that names this server by another host name counts as one more
// member.
func (c ClusterConfig) Members() int {
	if !c.Clustered() {
		return 1
	}
	others := map[string]bool{}
	for _, r := range c.Routes {
		u, err := url.Parse(strings.TrimSpace(r))
		if err != nil || u.Host == "" {
			continue
		}
		addr := strings.ToLower(u.Host)
		if !isSelf(c.Listen, addr) {
			others[addr] = true
		}
	}
	return len(others) + 1
}

// isSelf reports whether the route address addr (host:port) is the route
// listener listen.
func isSelf(listen, addr string) bool {
	lhost, lport, err := net.SplitHostPort(strings.ToLower(listen))
	if err != nil {
		return false
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port != lport {
		return false
	}
	if host == lhost {
		return true
	}
	if lip := net.ParseIP(lhost); lhost != "" && (lip == nil || !lip.IsUnspecified()) {
		return false // bound to one address, which is not host
	}
	// Bound to every interface: any address of this host is this server.
	if host == "localhost" {
		return true
	}
	if name, err := os.Hostname(); err == nil && strings.EqualFold(host, name) {
		return true
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return false
	}
	if ip.IsLoopback() {
		return true
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
			return true
		}
	}
	return false
}

// hostPort splits an address host:port into the form server.Options
// takes. Port 0 or -1 picks a random port; an empty host is 127.0.0.1.
func hostPort(what, addr string) (string, int, error) {
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("%s address %q: %w", what, addr, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < -1 || port > 65535 {
		return "", 0, fmt.Errorf("%s address %q has no valid port", what, addr)
	}
	if port == 0 {
		port = server.RANDOM_PORT // 0 would mean the default port to nats-server
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return host, port, nil
}

// parseURLs parses a list of server URLs.
func parseURLs(what string, list []string) ([]*url.URL, error) {
	urls := make([]*url.URL, 0, len(list))
	for _, s := range list {
		u, err := url.Parse(strings.TrimSpace(s))
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("invalid %s URL %q", what, s)
		}
		urls = append(urls, u)
	}
	return urls, nil
}

// applyCluster sets the cluster and leaf-node options of opts.
func (cfg Config) applyCluster(opts *server.Options) error {
	if c := cfg.Cluster; c.Clustered() {
		host, port, err := hostPort("cluster", c.Listen)
		if err != nil {
			return err
		}
		if cfg.JetStream {
			// What nats-server would refuse only once started, with
			// JetStream half set up.
			switch {
			case cfg.Name == "":
				return errors.New("a JetStream cluster needs a server name")
			case len(c.Routes) == 0:
				return errors.New("a JetStream cluster needs routes: list every member (a server may list itself)")
			}
		}
		name := c.Name
		if name == "" {
			name = DefaultClusterName
		}
		opts.Cluster = server.ClusterOpts{Name: name, Host: host, Port: port, Username: c.User, Password: c.Password}
		if opts.Routes, err = parseURLs("route", c.Routes); err != nil {
			return err
		}
		withUser(opts.Routes, c.User, c.Password)
		if c.TLS != nil {
			if opts.Cluster.TLSConfig, err = c.TLS.config(); err != nil {
				return err
			}
		}
	}
	if l := cfg.Leaf; l.Listen != "" || len(l.Remotes) > 0 {
		if l.Listen != "" {
			host, port, err := hostPort("leaf node", l.Listen)
			if err != nil {
				return err
			}
			opts.LeafNode.Host, opts.LeafNode.Port = host, port
			opts.LeafNode.Username, opts.LeafNode.Password = l.User, l.Password
		}
		var tlsConfig *tls.Config
		if l.TLS != nil {
			var err error
			if tlsConfig, err = l.TLS.config(); err != nil {
				return err
			}
			if l.Listen != "" {
				opts.LeafNode.TLSConfig = tlsConfig
			}
		}
		if len(l.Remotes) > 0 {
			urls, err := parseURLs("leaf node remote", l.Remotes)
			if err != nil {
				return err
			}
			withUser(urls, l.User, l.Password)
			opts.LeafNode.Remotes = []*server.RemoteLeafOpts{{URLs: urls, TLS: tlsConfig != nil, TLSConfig: tlsConfig}}
		}
	}
	return nil
}

// withUser gives the URLs that carry no credentials of their own the user
// and password, when there are some.
func withUser(urls []*url.URL, user, password string) {
	if user == "" {
		return
	}
	for _, u := range urls {
		if u.User == nil {
			u.User = url.UserPassword(user, password)
		}
	}
}
