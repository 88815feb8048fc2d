package config

import (
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nkeys"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus"
)

// TLSConfig is a [.. .tls] table: a certificate, its key, and the CA that
// signs the peers' certificates.
type TLSConfig struct {
	// Cert and Key are PEM files: the server's certificate (embedded
	// server) or the client's (a connection to external servers).
	Cert, Key string
	// CA is the PEM file of the certificate authority the peers'
	// certificates must be signed by.
	CA string
	// Verify requires a certificate of every client, route or leaf node
	// that connects (embedded server only).
	Verify bool
}

// User is one [[nats.users]] entry: a client user of the embedded server.
type User struct {
	// Name and Password, or Nkey (a user's public nkey), sign it in.
	Name, Password, Nkey string
	// Role is node, operator or viewer (bus.Roles).
	Role bus.Role
}

// PlainPassword reports whether the user's password is written in plain
// text rather than as a bcrypt hash: allowed, with a warning at start.
func (u User) PlainPassword() bool {
	return u.Password != "" && !strings.HasPrefix(u.Password, "$2a$") && !strings.HasPrefix(u.Password, "$2b$") && !strings.HasPrefix(u.Password, "$2y$")
}

// ClientAuth is how the node signs in to external servers ([nats] creds,
// nkey, user, password, token with nats.url set).
type ClientAuth struct {
	Creds    string // a .creds file (JWT and seed)
	Nkey     string // a file holding an nkey seed
	User     string
	Password string
	Token    string
}

// usersKey is the [[nats.users]] array of tables, read on its own.
const usersKey = "nats.users"

// userKeys are the keys of a [[nats.users]] entry.
var userKeys = []string{"user", "password", "nkey", "role"}

// parseUsers reads [[nats.users]].
func parseUsers(val any) ([]User, error) {
	if val == nil {
		return nil, nil
	}
	list, ok := val.([]any)
	if !ok {
		return nil, &KeyError{Key: usersKey, Err: fmt.Errorf("must be an array of tables ([[nats.users]]), got %s", tomlType(val))}
	}
	var users []User
	seen := map[string]bool{}
	for i, item := range list {
		key := fmt.Sprintf("%s[%d]", usersKey, i)
		t, ok := item.(map[string]any)
		if !ok {
			return nil, &KeyError{Key: key, Err: fmt.Errorf("must be a table, got %s", tomlType(item))}
		}
		var u User
		for _, k := range sortedKeys(t) {
			s, ok := t[k].(string)
			switch {
			case !containsString(userKeys, k):
				return nil, &KeyError{Key: key + "." + k, Err: ErrUnknownKey}
			case !ok:
				return nil, &KeyError{Key: key + "." + k, Err: fmt.Errorf("must be a string, got %s", tomlType(t[k]))}
			}
			switch k {
			case "user":
				u.Name = s
			case "password":
				u.Password = s
			case "nkey":
				u.Nkey = s
			case "role":
				u.Role = bus.Role(s)
			}
		}
		id := u.Name
		switch {
		case u.Role == "":
			return nil, &KeyError{Key: key + ".role", Err: ErrRequired}
		case !u.Role.Valid():
			return nil, &KeyError{Key: key + ".role", Err: fmt.Errorf("invalid role %q (expected node, operator or viewer)", u.Role)}
		case u.Nkey != "" && (u.Name != "" || u.Password != ""):
			return nil, &KeyError{Key: key, Err: errors.New("give nkey, or user and password, not both")}
		case u.Nkey != "":
			if !nkeys.IsValidPublicUserKey(u.Nkey) {
				return nil, &KeyError{Key: key + ".nkey", Err: fmt.Errorf("%q is not a user's public nkey (it starts with U; `nk -gen user -pubout` prints one)", u.Nkey)}
			}
			id = u.Nkey
		case u.Name == "":
			return nil, &KeyError{Key: key, Err: errors.New("needs user and password, or nkey")}
		case !api.ValidToken(u.Name):
			return nil, &KeyError{Key: key + ".user", Err: fmt.Errorf("invalid user name %q: must be 1 to 64 characters of A-Z a-z 0-9 _ -", u.Name)}
		case u.Password == "":
			return nil, &KeyError{Key: key + ".password", Err: ErrRequired}
		}
		if seen[id] {
			return nil, &KeyError{Key: key, Err: fmt.Errorf("user %q is given twice", id)}
		}
		seen[id] = true
		users = append(users, u)
	}
	return users, nil
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// tls reads the [<prefix>.tls] table: nil when it sets nothing. A
// certificate needs its key. The files are read when the node starts (a
// configuration is checked where they may not exist yet).
func (r layers) tls(prefix string, server bool) (*TLSConfig, error) {
	t := &TLSConfig{Cert: r.str(prefix + ".tls.cert"), Key: r.str(prefix + ".tls.key"), CA: r.str(prefix + ".tls.ca")}
	var err error
	if t.Verify, err = r.boolean(prefix + ".tls.verify"); err != nil {
		return nil, err
	}
	if *t == (TLSConfig{}) {
		return nil, nil
	}
	switch {
	case t.Cert == "" && t.Key != "":
		return nil, r.fail(prefix+".tls.cert", errors.New("is required with tls.key"))
	case t.Cert != "" && t.Key == "":
		return nil, r.fail(prefix+".tls.key", errors.New("is required with tls.cert"))
	case server && t.Cert == "":
		return nil, r.fail(prefix+".tls.cert", errors.New("is required: the embedded server presents a certificate"))
	case t.Verify && t.CA == "":
		return nil, r.fail(prefix+".tls.ca", errors.New("is required with verify = true: the CA that signs the peers' certificates"))
	}
	return t, nil
}

// natsSecurity reads the authentication and TLS keys of [nats], checking
// each against the mode: [[nats.users]] and verify configure the
// embedded server; creds, nkey, user, password and token the connection
// to external servers.
func (r layers) natsSecurity(c *NATSConfig, doc map[string]any) error {
	var err error
	if c.Insecure, err = r.boolean("nats.insecure"); err != nil {
		return err
	}
	natsTable, _ := doc["nats"].(map[string]any)
	if c.Users, err = parseUsers(natsTable["users"]); err != nil {
		return err
	}
	if len(c.Users) > 0 && !c.Embedded() {
		return &KeyError{Key: usersKey, Err: errors.New("configures the embedded server, but nats.url is set: users of external servers are theirs to configure")}
	}
	c.Client = ClientAuth{Creds: r.str("nats.creds"), Nkey: r.str("nats.nkey"), User: r.str("nats.user"),
		Password: r.str("nats.password"), Token: r.str("nats.token")}
	if c.Embedded() {
		for _, k := range []string{"nats.creds", "nats.nkey", "nats.user", "nats.password", "nats.token"} {
			if r.str(k) != "" {
				return r.fail(k, errors.New("signs the node in to external servers, but nats.url is empty: the embedded server's users are [[nats.users]]"))
			}
		}
	}
	ways := 0
	for _, set := range []bool{c.Client.Creds != "", c.Client.Nkey != "", c.Client.User != "", c.Client.Token != ""} {
		if set {
			ways++
		}
	}
	switch {
	case ways > 1:
		return r.fail("nats.user", errors.New("give one way to sign in: creds, nkey, user and password, or token"))
	case c.Client.Password != "" && c.Client.User == "":
		return r.fail("nats.user", errors.New("is required with nats.password"))
	}
	if c.TLS, err = r.tls("nats", c.Embedded()); err != nil {
		return err
	}
	if c.TLS != nil && c.TLS.Verify && !c.Embedded() {
		return r.fail("nats.tls.verify", errors.New("checks the clients of the embedded server, but nats.url is set"))
	}

	c.Cluster.User, c.Cluster.Password = r.str("nats.cluster.user"), r.str("nats.cluster.password")
	c.Leaf.User, c.Leaf.Password = r.str("nats.leaf.user"), r.str("nats.leaf.password")
	for _, p := range []struct {
		prefix         string
		user, password string
	}{{"nats.cluster", c.Cluster.User, c.Cluster.Password}, {"nats.leaf", c.Leaf.User, c.Leaf.Password}} {
		switch {
		case p.user != "" && p.password == "":
			return r.fail(p.prefix+".password", errors.New("is required with "+p.prefix+".user"))
		case p.user == "" && p.password != "":
			return r.fail(p.prefix+".user", errors.New("is required with "+p.prefix+".password"))
		}
	}
	if c.Cluster.TLS, err = r.tls("nats.cluster", true); err != nil {
		return err
	}
	if c.Leaf.TLS, err = r.tls("nats.leaf", c.Leaf.Listen != ""); err != nil {
		return err
	}
	if !c.Embedded() {
		for _, k := range []struct {
			key string
			set bool
		}{
			{"nats.cluster.user", c.Cluster.User != ""}, {"nats.leaf.user", c.Leaf.User != ""}, {"nats.insecure", c.Insecure},
		} {
			if k.set {
				return r.fail(k.key, errors.New("configures the embedded server, but nats.url is set: the node connects to those servers instead"))
			}
		}
		if c.Cluster.TLS != nil || c.Leaf.TLS != nil {
			return r.fail("nats.cluster.tls", errors.New("configures the embedded server, but nats.url is set"))
		}
	}
	return nil
}
