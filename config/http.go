package config

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"unicode"

	"github.com/corral-run/corral/bus"
)

// HTTPConfig is the [http] table: the node's HTTP gateway (API, events as
// SSE, metrics, health, dashboard).
type HTTPConfig struct {
	// Listen is the gateway's address, host:port (port 0: any free port).
	// Default 127.0.0.1:4280; empty turns the gateway off.
	Listen string
	// Tokens are [[http.tokens]]: who may use the gateway, and as what.
	// None: anyone who reaches it is an operator (loopback only, unless
	// Insecure).
	Tokens []HTTPToken
	// TLS is [http.tls] (cert and key): the gateway serves HTTPS.
	TLS *TLSConfig
	// Insecure lets the gateway listen where other hosts reach it
	// without tokens and TLS (with a warning at every start).
	Insecure bool
}

// HTTPToken is one [[http.tokens]] entry: a bearer token and the role
// (viewer or operator) of whoever presents it.
type HTTPToken struct {
	Token string
	Role  bus.Role
}

// DefaultHTTPListen is the default of http.listen.
const DefaultHTTPListen = "127.0.0.1:4280"

// MinTokenLength is the shortest http token: a guessable one would let a
// stranger drive the cluster.
const MinTokenLength = 16

// tokensKey is the [[http.tokens]] array of tables, read on its own.
const tokensKey = "http.tokens"

// tokenKeys are the keys of a [[http.tokens]] entry.
var tokenKeys = []string{"token", "role"}

// http reads [http].
func (r layers) http(table map[string]any) (HTTPConfig, error) {
	var c HTTPConfig
	var err error
	if c.Listen, err = r.listenAddress("http.listen", true); err != nil {
		return c, err
	}
	if c.Insecure, err = r.boolean("http.insecure"); err != nil {
		return c, err
	}
	if c.Tokens, err = parseTokens(table["tokens"]); err != nil {
		return c, err
	}
	if c.TLS, err = r.certAndKey("http"); err != nil {
		return c, err
	}
	return c, nil
}

// parseTokens reads [[http.tokens]].
func parseTokens(val any) ([]HTTPToken, error) {
	if val == nil {
		return nil, nil
	}
	list, ok := val.([]any)
	if !ok {
		return nil, &KeyError{Key: tokensKey, Err: fmt.Errorf("must be an array of tables ([[http.tokens]]), got %s", tomlType(val))}
	}
	var out []HTTPToken
	seen := map[string]bool{}
	for i, item := range list {
		key := fmt.Sprintf("%s[%d]", tokensKey, i)
		t, ok := item.(map[string]any)
		if !ok {
			return nil, &KeyError{Key: key, Err: fmt.Errorf("must be a table, got %s", tomlType(item))}
		}
		var tok HTTPToken
		for _, k := range sortedKeys(t) {
			s, ok := t[k].(string)
			switch {
			case !containsString(tokenKeys, k):
				return nil, &KeyError{Key: key + "." + k, Err: ErrUnknownKey}
			case !ok:
				return nil, &KeyError{Key: key + "." + k, Err: fmt.Errorf("must be a string, got %s", tomlType(t[k]))}
			}
			switch k {
			case "token":
				tok.Token = s
			case "role":
				tok.Role = bus.Role(s)
			}
		}
		switch {
		case tok.Token == "":
			return nil, &KeyError{Key: key + ".token", Err: ErrRequired}
		case len(tok.Token) < MinTokenLength:
			return nil, &KeyError{Key: key + ".token", Err: fmt.Errorf("is %d characters, fewer than %d (make one with: openssl rand -hex 32)", len(tok.Token), MinTokenLength)}
		case strings.IndexFunc(tok.Token, func(r rune) bool { return r > unicode.MaxASCII || !unicode.IsPrint(r) || r == ' ' }) >= 0:
			return nil, &KeyError{Key: key + ".token", Err: errors.New("must be printable ASCII without spaces (it travels in an HTTP header)")}
		case tok.Role == "":
			return nil, &KeyError{Key: key + ".role", Err: ErrRequired}
		case tok.Role != bus.RoleViewer && tok.Role != bus.RoleOperator:
			return nil, &KeyError{Key: key + ".role", Err: fmt.Errorf("invalid role %q (expected viewer or operator)", tok.Role)}
		case seen[tok.Token]:
			return nil, &KeyError{Key: key + ".token", Err: fmt.Errorf("is the same as an earlier token's")}
		}
		seen[tok.Token] = true
		out = append(out, tok)
	}
	return out, nil
}

// certAndKey reads [<prefix>.tls] where it takes only cert and key: nil
// when it sets neither. The files are read when the node starts.
func (r layers) certAndKey(prefix string) (*TLSConfig, error) {
	t := &TLSConfig{Cert: r.str(prefix + ".tls.cert"), Key: r.str(prefix + ".tls.key")}
	switch {
	case t.Cert == "" && t.Key == "":
		return nil, nil
	case t.Cert == "":
		return nil, r.fail(prefix+".tls.cert", errors.New("is required with tls.key"))
	case t.Key == "":
		return nil, r.fail(prefix+".tls.key", errors.New("is required with tls.cert"))
	}
	return t, nil
}

// listenAddress reads an optional host:port; port 0 picks a free one when
// anyPort.
func (r layers) listenAddress(key string, anyPort bool) (string, error) {
	addr := strings.TrimSpace(r.str(key))
	if addr == "" {
		return "", nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return "", r.fail(key, fmt.Errorf("invalid address %q (expected host:port, e.g. 127.0.0.1:4280; empty turns it off)", addr))
	}
	low := 1
	if anyPort {
		low = 0
	}
	if p, err := strconv.Atoi(port); err != nil || p < low || p > 65535 {
		return "", r.fail(key, fmt.Errorf("invalid port %q in %q (expected %d to 65535)", port, addr, low))
	}
	return addr, nil
}

// natsExtras reads nats.monitor and [nats.websocket]: both configure the
// embedded server.
func (r layers) natsExtras(c *NATSConfig) error {
	var err error
	if c.Monitor, err = r.listenAddress("nats.monitor", false); err != nil {
		return err
	}
	if c.WebSocket.Listen, err = r.listenAddress("nats.websocket.listen", false); err != nil {
		return err
	}
	if c.WebSocket.TLS, err = r.certAndKey("nats.websocket"); err != nil {
		return err
	}
	if !c.Embedded() {
		for _, k := range []struct {
			key string
			set bool
		}{
			{"nats.monitor", c.Monitor != ""}, {"nats.websocket.listen", c.WebSocket.Listen != ""},
			{"nats.websocket.tls.cert", c.WebSocket.TLS != nil},
		} {
			if k.set {
				return r.fail(k.key, errors.New("configures the embedded server, but nats.url is set: the node connects to those servers instead"))
			}
		}
	}
	if c.WebSocket.TLS != nil && c.WebSocket.Listen == "" {
		return r.fail("nats.websocket.listen", errors.New("is required with [nats.websocket.tls]"))
	}
	return nil
}
