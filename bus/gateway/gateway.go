package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/netutil"

	"github.com/corral-run/corral/bus"
	"github.com/corral-run/corral/bus/control"
)

// Config configures a Gateway. Zero limits take the defaults noted.
type Config struct {
	// Listen is host:port (port 0: any free port). Required.
	Listen string
	// Tokens are who may use the gateway, each with a role (viewer or
	// operator). None: everyone is an operator.
	Tokens []Token
	// TLS, when set, serves HTTPS.
	TLS *TLS
	// Insecure lets a listener other hosts can reach run without tokens
	// and TLS; New refuses it otherwise (ErrInsecure).
	Insecure bool
	// NodeID is the node this gateway runs in (shown by the dashboard).
	NodeID string
	// Metrics serves /metrics (nil: 404).
	Metrics http.Handler
	// Ready says whether the node is ready for /readyz: every check must
	// pass. nil: ready once serving.
	Ready func() []Check
	// MaxConns bounds the connections open at once (default 1024): more
	// wait to be accepted.
	MaxConns int
	// MaxStreams bounds the event and log streams served at once
	// (default 256): more get 503.
	MaxStreams int
	// StreamQueue bounds the events waiting for one stream's writer
	// (default 1024): a stream that falls further behind catches up from
	// the history (stored events) or loses the live ones, counted.
	StreamQueue int
	// MaxSessions bounds the dashboard's sign-ins kept (default 1024):
	// the oldest goes first. SessionTTL is how long one lasts (default
	// 12h).
	MaxSessions int
	SessionTTL  time.Duration
	// LogPoll is how often a followed log is read again (default 250ms).
	LogPoll time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Token is a bearer token and the role of whoever presents it.
type Token struct {
	Token string
	Role  bus.Role
}

// TLS is the certificate the gateway presents and its key (PEM files).
type TLS struct {
	Cert, Key string
}

// Check is one condition of readiness.
type Check struct {
	Name string `json:"name"`
	OK   bool   `json:"ok"`
	// Detail says what is wrong, or how it is.
	Detail string `json:"detail,omitempty"`
}

// Defaults of Config.
const (
	DefaultMaxConns    = 1024
	DefaultMaxStreams  = 256
	DefaultStreamQueue = 1024
	DefaultMaxSessions = 1024
	DefaultSessionTTL  = 12 * time.Hour
	DefaultLogPoll     = 250 * time.Millisecond
)

// ErrInsecure is matched by the error of New when the listener is
// reachable from other hosts without tokens and TLS, and Config.Insecure
// is not set.
var ErrInsecure = errors.New("HTTP listener without tokens and TLS")

// Gateway is a node's HTTP listener. Create it with New, Start it, Close
// it: Close stops accepting, ends the streams and waits for every handler.
type Gateway struct {
	cfg      Config
	ctl      *control.Control
	log      *slog.Logger
	loopback bool // the listener is on loopback: Host must name it too
	tls      *tls.Config

	auth     *authenticator
	handler  http.Handler
	stored   hub            // the event stream, shared by the streams
	live     hub            // process.> live, shared by the streams
	bg       sync.WaitGroup // the hubs' subscriptions
	streams  atomic.Int64
	srv      *http.Server
	ln       net.Listener
	ctx      context.Context // ends on Close: the streams end with it
	cancel   context.CancelFunc
	serveErr chan error
	closeMu  sync.Mutex
	closed   bool

	openAPIState
}

// New returns a Gateway on ctl, not yet listening. It checks the
// configuration: the listener's exposure (ErrInsecure), the certificate.
func New(ctl *control.Control, cfg Config) (*Gateway, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.MaxStreams <= 0 {
		cfg.MaxStreams = DefaultMaxStreams
	}
	if cfg.StreamQueue <= 0 {
		cfg.StreamQueue = DefaultStreamQueue
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = DefaultMaxSessions
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = DefaultSessionTTL
	}
	if cfg.LogPoll <= 0 {
		cfg.LogPoll = DefaultLogPoll
	}
	if _, _, err := net.SplitHostPort(cfg.Listen); err != nil {
		return nil, fmt.Errorf("cannot start the HTTP gateway: invalid address %q (http.listen): %w", cfg.Listen, err)
	}
	for _, t := range cfg.Tokens {
		if t.Role != bus.RoleViewer && t.Role != bus.RoleOperator {
			return nil, fmt.Errorf("cannot start the HTTP gateway: a token's role is %q, not viewer or operator", t.Role)
		}
	}
	g := &Gateway{cfg: cfg, ctl: ctl, log: cfg.Logger.With("component", "http"), loopback: bus.IsLoopback(cfg.Listen)}
	if !g.loopback && (len(cfg.Tokens) == 0 || cfg.TLS == nil) && !cfg.Insecure {
		var missing []string
		if len(cfg.Tokens) == 0 {
			missing = append(missing, "[[http.tokens]]")
		}
		if cfg.TLS == nil {
			missing = append(missing, "[http.tls]")
		}
		return nil, fmt.Errorf("cannot start the HTTP gateway: %w: %s (http.listen) is reachable from other hosts: add %s, or set [http] insecure = true to run it so",
			ErrInsecure, cfg.Listen, strings.Join(missing, " and "))
	}
	if cfg.TLS != nil {
		cert, err := tls.LoadX509KeyPair(cfg.TLS.Cert, cfg.TLS.Key)
		if err != nil {
			return nil, fmt.Errorf("cannot start the HTTP gateway: cannot load [http.tls] certificate %s: %w", cfg.TLS.Cert, err)
		}
		g.tls = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	g.auth = newAuthenticator(cfg.Tokens, cfg.MaxSessions, cfg.SessionTTL, cfg.TLS != nil)
	g.ctx, g.cancel = context.WithCancel(context.Background())
	g.stored, g.live = hub{g: g, stored: true}, hub{g: g}
	g.handler = g.routes()
	return g, nil
}

// Insecure reports whether the gateway is reachable from other hosts
// without tokens or TLS (allowed by Config.Insecure): worth a warning.
func (g *Gateway) Insecure() bool {
	return !g.loopback && (len(g.cfg.Tokens) == 0 || g.cfg.TLS == nil)
}

// Handler is the gateway's HTTP handler, for tests and for callers that
// serve it themselves.
func (g *Gateway) Handler() http.Handler { return g.handler }

// Start listens and serves in the background. It fails at once, naming
// the key, when the address is taken.
func (g *Gateway) Start() error {
	ln, err := net.Listen("tcp", g.cfg.Listen)
	if err != nil {
		return fmt.Errorf("cannot start the HTTP gateway: cannot listen on %s (http.listen): %w", g.cfg.Listen, err)
	}
	g.ln = ln
	limited := netutil.LimitListener(ln, g.cfg.MaxConns)
	g.srv = &http.Server{
		Handler:           g.handler,
		ReadHeaderTimeout: 10 * time.Second,
		// Bodies are small (maxBody); a stream clears its read deadline.
		ReadTimeout:    30 * time.Second,
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       slog.NewLogLogger(g.log.Handler(), slog.LevelDebug),
		BaseContext:    func(net.Listener) context.Context { return g.ctx },
		TLSConfig:      g.tls,
	}
	g.serveErr = make(chan error, 1)
	go func() {
		var err error
		if g.tls != nil {
			err = g.srv.ServeTLS(limited, "", "")
		} else {
			err = g.srv.Serve(limited)
		}
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		g.serveErr <- err
	}()
	scheme := "http"
	if g.tls != nil {
		scheme = "https"
	}
	g.log.Info("HTTP gateway listening", "url", scheme+"://"+ln.Addr().String(), "tokens", len(g.cfg.Tokens))
	return nil
}

// Addr is the address the gateway listens on (after Start).
func (g *Gateway) Addr() string {
	if g.ln == nil {
		return ""
	}
	return g.ln.Addr().String()
}

// URL is the gateway's base URL (after Start).
func (g *Gateway) URL() string {
	scheme := "http"
	if g.tls != nil {
		scheme = "https"
	}
	return scheme + "://" + g.Addr()
}

// Streams is the number of event and log streams served now.
func (g *Gateway) Streams() int { return int(g.streams.Load()) }

// Close stops the gateway: it stops accepting, ends the streams, and
// waits until ctx ends for the requests in flight.
func (g *Gateway) Close(ctx context.Context) error {
	g.closeMu.Lock()
	defer g.closeMu.Unlock()
	if g.closed {
		return nil
	}
	g.closed = true
	g.cancel() // the streams and the hubs end: Shutdown would wait for them otherwise
	defer g.bg.Wait()
	if g.srv == nil {
		return nil
	}
	err := g.srv.Shutdown(ctx)
	if err != nil {
		g.srv.Close()
		err = fmt.Errorf("cannot stop the HTTP gateway in time: %w", err)
	}
	return errors.Join(err, <-g.serveErr)
}
