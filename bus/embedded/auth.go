package embedded

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/corral-run/corral/bus"
)

// User is a client user of the embedded server, with the permissions of
// its role (bus.RolePermissions). It signs in with a name and a password,
// or with an nkey.
type User struct {
	// Name and Password: a password user. Name is a subject token (it
	// names the user's inbox prefix, bus.InboxPrefix). Password is plain
	// text or a bcrypt hash ("$2a$…", compared with bcrypt).
	Name     string
	Password string
	// Nkey is a user's public nkey ("U…"), instead of Name and Password;
	// its inbox prefix is bus.InboxPrefix(Nkey).
	Nkey string
	Role bus.Role
}

// ID is what names the user: its name, or its public nkey.
func (u User) ID() string {
	if u.Nkey != "" {
		return u.Nkey
	}
	return u.Name
}

// TLS configures TLS on a listener (the server's side) or on a connection
// the server makes (a route, a leaf node: its client side).
type TLS struct {
	// Cert and Key are the certificate and its private key (PEM files):
	// what the server presents.
	Cert, Key string
	// CA is the certificate authority (PEM file) that signs the peers'
	// certificates; empty: the system's.
	CA string
	// Verify requires and verifies the peer's certificate: a client, route
	// or leaf node without a certificate the CA signed is refused.
	Verify bool
}

func (t *TLS) config() (*tls.Config, error) {
	c, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: t.Cert, KeyFile: t.Key, CaFile: t.CA, Verify: t.Verify})
	if err != nil {
		return nil, fmt.Errorf("cannot load TLS certificate %s: %w", t.Cert, err)
	}
	// Routes and leaf nodes use it as clients too: the CA then checks the
	// server they connect to.
	c.RootCAs = c.ClientCAs
	return c, nil
}

var userNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// validate checks a user as the configuration would.
func (u User) validate() error {
	switch {
	case !u.Role.Valid():
		return fmt.Errorf("user %q: role %q is not node, operator or viewer", u.ID(), u.Role)
	case u.Nkey != "" && (u.Name != "" || u.Password != ""):
		return fmt.Errorf("user %q: give an nkey, or a name and a password, not both", u.ID())
	case u.Nkey != "":
		if !nkeys.IsValidPublicUserKey(u.Nkey) {
			return fmt.Errorf("nkey %q is not a user's public nkey (it starts with U; `nk -gen user -pubout` prints one)", u.Nkey)
		}
	case !userNameRE.MatchString(u.Name):
		return fmt.Errorf("user name %q must be 1 to 64 characters of A-Z a-z 0-9 _ -", u.Name)
	case u.Password == "":
		return fmt.Errorf("user %q has no password", u.Name)
	}
	return nil
}

// permissions are the nats-server permissions of a role for one user.
func permissions(role bus.Role, user string) *server.Permissions {
	p, _ := bus.RolePermissions(role, bus.InboxPrefix(user))
	out := &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: p.PublishAllow, Deny: p.PublishDeny},
		Subscribe: &server.SubjectPermission{Allow: p.SubscribeAllow, Deny: p.SubscribeDeny},
	}
	if p.Responses {
		out.Response = &server.ResponsePermission{MaxMsgs: server.DEFAULT_ALLOW_RESPONSE_MAX_MSGS, Expires: server.DEFAULT_ALLOW_RESPONSE_EXPIRATION}
	}
	return out
}

// nodeUser is the node's own user on its embedded server: made up at
// start, never written anywhere, with every permission (the node is the
// server's owner). It exists only when the server has users.
type nodeUser struct{ name, password string }

func newNodeUser() nodeUser {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return nodeUser{name: "corrald-" + hex.EncodeToString(b[:4]), password: hex.EncodeToString(b[4:])}
}

// applyAuth puts the users, the node's own user and TLS of the client
// listener into opts.
func (cfg Config) applyAuth(opts *server.Options) (nodeUser, error) {
	var self nodeUser
	seen := map[string]bool{}
	for _, u := range cfg.Users {
		if err := u.validate(); err != nil {
			return self, err
		}
		if seen[u.ID()] {
			return self, fmt.Errorf("user %q is given twice", u.ID())
		}
		seen[u.ID()] = true
		if u.Nkey != "" {
			opts.Nkeys = append(opts.Nkeys, &server.NkeyUser{Nkey: u.Nkey, Permissions: permissions(u.Role, u.Nkey)})
		} else {
			opts.Users = append(opts.Users, &server.User{Username: u.Name, Password: u.Password, Permissions: permissions(u.Role, u.Name)})
		}
	}
	if len(cfg.Users) > 0 {
		self = newNodeUser()
		opts.Users = append(opts.Users, &server.User{Username: self.name, Password: self.password})
	}
	if cfg.TLS != nil {
		c, err := cfg.TLS.config()
		if err != nil {
			return self, err
		}
		opts.TLSConfig, opts.TLSVerify = c, cfg.TLS.Verify
		opts.TLS = true
	}
	return self, nil
}

// ErrInsecure is matched by the error of Start when a listener that other
// hosts can reach has no authentication and Config.Insecure is not set.
var ErrInsecure = errors.New("listener without authentication")

// checkExposure refuses a listener other hosts can reach without
// authentication, unless cfg.Insecure; it returns the listeners it let
// through that way, for the node to warn about.
func (cfg Config) checkExposure() ([]string, error) {
	type listener struct {
		what, key, addr string
		authed          bool
		fix             string
	}
	ls := []listener{
		{"client", "nats.listen", cfg.Listen, len(cfg.Users) > 0,
			"add [[nats.users]] (user and password, or nkey, with a role)"},
		{"route", "nats.cluster.listen", cfg.Cluster.Listen, cfg.Cluster.User != "" || cfg.Cluster.TLS != nil && cfg.Cluster.TLS.Verify,
			"add [nats.cluster] user and password, or [nats.cluster.tls] with verify = true"},
		{"leaf node", "nats.leaf.listen", cfg.Leaf.Listen, cfg.Leaf.User != "" || cfg.Leaf.TLS != nil && cfg.Leaf.TLS.Verify,
			"add [nats.leaf] user and password, or [nats.leaf.tls] with verify = true"},
	}
	if cfg.WebSocket.Listen != "" {
		ls = append(ls, listener{"WebSocket", "nats.websocket.listen", cfg.WebSocket.Listen, len(cfg.Users) > 0,
			"add [[nats.users]] (user and password, or nkey, with a role)"})
	}
	if cfg.Monitor != "" {
		ls = append(ls, listener{"monitoring", "nats.monitor", cfg.Monitor, false,
			"listen on loopback (127.0.0.1) and reach it through SSH or a proxy that authenticates"})
	}
	var open []string
	if w := cfg.WebSocket; w.Listen != "" {
		// Any web page a browser opens may connect to a WebSocket, on
		// loopback too: without users it could drive the cluster.
		switch {
		case len(cfg.Users) == 0 && !cfg.Insecure:
			return nil, fmt.Errorf("%w: the WebSocket listener %s (nats.websocket.listen) has no users, so any web page a browser on a host that reaches it opens could drive the cluster: add [[nats.users]], or set [nats] insecure = true to run it open",
				ErrInsecure, w.Listen)
		case len(cfg.Users) == 0:
			open = append(open, fmt.Sprintf("WebSocket listener %s (nats.websocket.listen) without users", w.Listen))
		}
		if w.TLS == nil && !bus.IsLoopback(w.Listen) {
			if !cfg.Insecure {
				return nil, fmt.Errorf("%w: the WebSocket listener %s (nats.websocket.listen) is reachable from other hosts without TLS, so passwords would cross the network in clear: add [nats.websocket.tls], or set [nats] insecure = true",
					ErrInsecure, w.Listen)
			}
			open = append(open, fmt.Sprintf("WebSocket listener %s (nats.websocket.listen) without TLS", w.Listen))
		}
	}
	for _, l := range ls {
		if l.addr == "" || l.authed || bus.IsLoopback(l.addr) {
			continue
		}
		if !cfg.Insecure {
			return nil, fmt.Errorf("%w: the %s listener %s (%s) is reachable from other hosts and has no authentication: %s, or set [nats] insecure = true to run it open",
				ErrInsecure, l.what, l.addr, l.key, l.fix)
		}
		open = append(open, fmt.Sprintf("%s listener %s (%s)", l.what, l.addr, l.key))
	}
	return open, nil
}

// applyHTTP puts the monitoring endpoint and the WebSocket listener into
// opts.
func (cfg Config) applyHTTP(opts *server.Options) error {
	if cfg.Monitor != "" {
		host, port, err := hostPort("monitor", cfg.Monitor)
		if err != nil {
			return err
		}
		opts.HTTPHost, opts.HTTPPort = host, port
	}
	if w := cfg.WebSocket; w.Listen != "" {
		host, port, err := hostPort("websocket listen", w.Listen)
		if err != nil {
			return err
		}
		opts.Websocket.Host, opts.Websocket.Port = host, port
		if w.TLS == nil {
			opts.Websocket.NoTLS = true
		} else {
			c, err := w.TLS.config()
			if err != nil {
				return err
			}
			opts.Websocket.TLSConfig = c
		}
	}
	return nil
}
