package bus

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// ClientOptions say where a client of the bus connects and as whom: what
// the nats CLI takes (--server, --user, --password, --creds, --nkey,
// --tlscert, --tlskey, --tlsca, --context, --inbox-prefix), so that
// corralctl, a Go service and the node's own external connection sign in
// the same way. The zero value connects to nobody in particular without
// credentials.
type ClientOptions struct {
	// Servers is a comma-separated list of server URLs.
	Servers string
	// Context names a nats CLI context (~/.config/nats/context/NAME.json,
	// or under $XDG_CONFIG_HOME): what it sets fills what is unset here.
	Context string
	// User and Password, or Token, or Creds (a .creds file with a JWT and
	// seed), or Nkey (a file holding an nkey seed) sign the client in.
	User, Password, Token string
	Creds, Nkey           string
	// TLSCert and TLSKey are a client certificate and its key (PEM
	// files); TLSCA is the CA that signs the server's certificate.
	TLSCert, TLSKey, TLSCA string
	// InboxPrefix is the prefix of the client's reply subjects. Default:
	// InboxPrefix(User) for a user, InboxPrefix(public key) for an nkey
	// (the prefix the embedded server's users may read), _INBOX otherwise.
	InboxPrefix string
}

// FromEnv fills what is unset from the nats CLI's environment variables:
// NATS_URL, NATS_USER, NATS_PASSWORD, NATS_CREDS, NATS_NKEY, NATS_CONTEXT.
func (o ClientOptions) FromEnv(lookup func(string) (string, bool)) ClientOptions {
	for _, v := range []struct {
		name string
		to   *string
	}{
		{"NATS_URL", &o.Servers}, {"NATS_USER", &o.User}, {"NATS_PASSWORD", &o.Password},
		{"NATS_CREDS", &o.Creds}, {"NATS_NKEY", &o.Nkey}, {"NATS_CONTEXT", &o.Context},
	} {
		if val, ok := lookup(v.name); ok && *v.to == "" {
			*v.to = val
		}
	}
	return o
}

// natsContext is a nats CLI context file: the fields Corral uses of the
// format jsm.go's natscontext package writes (the nats CLI's own).
type natsContext struct {
	URL         string `json:"url"`
	Token       string `json:"token"`
	User        string `json:"user"`
	Password    string `json:"password"`
	Creds       string `json:"creds"`
	NKey        string `json:"nkey"`
	Cert        string `json:"cert"`
	Key         string `json:"key"`
	CA          string `json:"ca"`
	InboxPrefix string `json:"inbox_prefix"`
}

// maxContextBytes bounds a context file: it holds a few short strings.
const maxContextBytes = 1 << 20

// ContextPath is where the nats CLI keeps the context name.
func ContextPath(name string) (string, error) {
	if name == "" || strings.ContainsAny(name, `/\`) || strings.HasPrefix(name, ".") {
		return "", fmt.Errorf("invalid context name %q", name)
	}
	root := os.Getenv("XDG_CONFIG_HOME")
	if root == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("cannot find the nats contexts: %w", err)
		}
		root = filepath.Join(home, ".config")
	}
	return filepath.Join(root, "nats", "context", name+".json"), nil
}

// WithContext returns o with what is unset taken from its Context.
func (o ClientOptions) WithContext() (ClientOptions, error) {
	if o.Context == "" {
		return o, nil
	}
	path, err := ContextPath(o.Context)
	if err != nil {
		return o, err
	}
	f, err := os.Open(path)
	if err != nil {
		return o, fmt.Errorf("cannot load nats context %q: %w", o.Context, err)
	}
	defer f.Close()
	var c natsContext
	dec := json.NewDecoder(&limitedReader{f, maxContextBytes})
	if err := dec.Decode(&c); err != nil {
		return o, fmt.Errorf("cannot load nats context %q from %s: %w", o.Context, path, err)
	}
	for _, v := range []struct {
		to   *string
		from string
	}{
		{&o.Servers, c.URL}, {&o.Token, c.Token}, {&o.User, c.User}, {&o.Password, c.Password},
		{&o.Creds, c.Creds}, {&o.Nkey, c.NKey}, {&o.TLSCert, c.Cert}, {&o.TLSKey, c.Key}, {&o.TLSCA, c.CA},
		{&o.InboxPrefix, c.InboxPrefix},
	} {
		if *v.to == "" {
			*v.to = expandHome(v.from)
		}
	}
	return o, nil
}

type limitedReader struct {
	f interface{ Read([]byte) (int, error) }
	n int
}

func (r *limitedReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, errors.New("the file is larger than 1 MiB")
	}
	if len(p) > r.n {
		p = p[:r.n]
	}
	n, err := r.f.Read(p)
	r.n -= n
	return n, err
}

func expandHome(p string) string {
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, rest)
		}
	}
	return p
}

// NATSOptions are the nats.Go options that sign the client in as o says.
func (o ClientOptions) NATSOptions() ([]nats.Option, error) {
	var opts []nats.Option
	signIns := 0
	inbox := o.InboxPrefix
	switch {
	case o.User != "":
		signIns++
		opts = append(opts, nats.UserInfo(o.User, o.Password))
		if inbox == "" {
			inbox = InboxPrefix(o.User)
		}
	case o.Password != "":
		return nil, errors.New("a password needs a user")
	}
	if o.Token != "" {
		signIns++
		opts = append(opts, nats.Token(o.Token))
	}
	if o.Creds != "" {
		signIns++
		opts = append(opts, nats.UserCredentials(o.Creds))
	}
	if o.Nkey != "" {
		signIns++
		seed, err := os.ReadFile(o.Nkey)
		if err != nil {
			return nil, fmt.Errorf("cannot read nkey seed: %w", err)
		}
		kp, err := nkeys.FromSeed([]byte(strings.TrimSpace(string(seed))))
		if err != nil {
			return nil, fmt.Errorf("cannot read nkey seed %s: %w", o.Nkey, err)
		}
		pub, err := kp.PublicKey()
		if err != nil {
			return nil, fmt.Errorf("cannot read nkey seed %s: %w", o.Nkey, err)
		}
		opts = append(opts, nats.Nkey(pub, kp.Sign))
		if inbox == "" {
			inbox = InboxPrefix(pub)
		}
	}
	if signIns > 1 {
		return nil, errors.New("give one way to sign in: a user and password, a token, a creds file or an nkey")
	}
	if (o.TLSCert == "") != (o.TLSKey == "") {
		return nil, errors.New("a TLS client certificate needs both the certificate and its key")
	}
	if o.TLSCert != "" {
		opts = append(opts, nats.ClientCert(o.TLSCert, o.TLSKey))
	}
	if o.TLSCA != "" {
		opts = append(opts, nats.RootCAs(o.TLSCA))
	}
	if inbox != "" {
		opts = append(opts, nats.CustomInboxPrefix(inbox))
	}
	return opts, nil
}

// RedactURLs returns a comma-separated list of server URLs with every
// password and token replaced by "xxxxx", for logs and replies.
func RedactURLs(urls string) string {
	parts := strings.Split(urls, ",")
	for i, s := range parts {
		s = strings.TrimSpace(s)
		u, err := url.Parse(s)
		switch {
		case err != nil:
			if strings.Contains(s, "@") {
				parts[i] = "xxxxx@" + s[strings.LastIndexByte(s, '@')+1:]
			}
		case u.User == nil:
			parts[i] = s
		default:
			if _, hasPassword := u.User.Password(); hasPassword {
				parts[i] = u.Redacted()
			} else { // a token in the user part
				u.User = url.User("xxxxx")
				parts[i] = u.String()
			}
		}
	}
	return strings.Join(parts, ",")
}

// Connect connects to external NATS servers (a comma-separated list of
// URLs), reconnecting forever, retrying the first connection too. What it
// logs and its errors name the servers without their credentials.
func Connect(urls, name string, logger *slog.Logger, opts ...nats.Option) (*nats.Conn, error) {
	if logger == nil {
		logger = slog.Default()
	}
	all := append([]nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		nats.RetryOnFailedConnect(true),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			logger.Warn("disconnected from NATS", "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			logger.Info("reconnected to NATS", "url", nc.ConnectedUrlRedacted())
		}),
	}, opts...)
	nc, err := nats.Connect(strings.TrimSpace(urls), all...)
	if err != nil {
		return nil, fmt.Errorf("cannot connect to NATS at %s: %w", RedactURLs(urls), err)
	}
	return nc, nil
}

// IsLoopback reports whether addr (host:port) listens on loopback only.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// MessageRoom is the most a message's body may hold on nc: the server's
// max_payload, less room for its headers and the protocol (4 KiB), and at
// least 1 KiB.
func MessageRoom(nc *nats.Conn) int { return max(int(nc.MaxPayload())-4<<10, 1<<10) }
