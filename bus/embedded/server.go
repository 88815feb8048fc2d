package embedded

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Config configures the embedded nats-server.
type Config struct {
	// Name is the server name (the node id).
	Name string
	// Listen is the client address, host:port. Port 0 or -1 picks a random
	// port. Empty means 127.0.0.1:4222.
	Listen string
	// JetStream turns JetStream on, storing under StoreDir.
	JetStream bool
	StoreDir  string
	// Logger receives the server's log lines.
	Logger *slog.Logger
	// Cluster, when its Listen is set, makes the server a member of a
	// NATS cluster (a JetStream cluster with JetStream on; Name is then
	// the server's name in it and must be unique).
	Cluster ClusterConfig
	// Leaf makes the server a leaf node of a hub, or a hub of leaf nodes.
	Leaf LeafConfig
	// Users are the client users, each with the permissions of its role.
	// Without users, any client may do anything (the server had better
	// listen on loopback only: see Insecure). With users, the node
	// connects as a user of its own, made up at start.
	Users []User
	// TLS, when set, makes client connections use TLS (and, with Verify,
	// present a certificate the CA signed).
	TLS *TLS
	// MaxPayload is the largest message the server takes, control
	// requests included (default DefaultMaxPayload).
	MaxPayload int
	// Insecure lets a listener that other hosts can reach (not loopback)
	// run without authentication; Start refuses it otherwise
	// (ErrInsecure). Server.Insecure lists such listeners, for the node
	// to warn about.
	Insecure bool
	// Monitor, host:port, serves the server's own HTTP monitoring
	// endpoint (/varz, /connz, /jsz…). It has no authentication, so it
	// must be on loopback unless Insecure. Empty: none.
	Monitor string
	// WebSocket accepts clients over WebSocket (browser apps, nats.js).
	WebSocket WebSocketConfig
}

// WebSocketConfig is the server's WebSocket listener. Its clients sign in
// as the server's Users, with their roles.
type WebSocketConfig struct {
	// Listen is host:port; empty: no WebSocket listener.
	Listen string
	// TLS, when set, makes it wss:// (Cert and Key only). Without it the
	// listener must be on loopback unless Config.Insecure.
	TLS *TLS
}

// DefaultMaxPayload is the largest message of the embedded server unless
// Config.MaxPayload says otherwise: a child's line (1 MiB by default) and
// its headers, and no control request larger than that.
const DefaultMaxPayload = 1 << 20

// Server is a running embedded nats-server.
type Server struct {
	*server.Server
	self nodeUser // the node's own user; empty without users
	open []string // listeners open to other hosts without authentication
	tls  bool     // clients need TLS
	log  *slog.Logger
}

// Insecure lists the listeners other hosts can reach without
// authentication (allowed by Config.Insecure): each deserves a warning.
func (s *Server) Insecure() []string { return s.open }

// Connect connects the node to its server, as its own user when the
// server has users: over TCP to the client listener (on loopback when it
// listens on every address), or in process (no TCP) when clients need
// TLS, which an in-process connection skips.
//
// TCP is the faster of the two: an in-process connection is a net.Pipe,
// on which nats.go's flush waits, holding the connection's lock, until the
// server has read everything; so every publisher waits as well, where a
// socket's buffer lets them go on. Relaying events, the pipe cost a fifth
// more CPU per event (BenchmarkRelay in internal/daemon).
//
// The listener is on this host, so TCP should always answer. Should it not
// (an address the host cannot reach itself on, a local firewall), the node
// connects in process all the same rather than not at all, and warns in
// the log, with TCP's error: the node runs slower, and clients on this
// host may not reach the server at that address either. A server that
// answers over TCP but refuses the node (its user or password) would
// refuse it in process too, where the refusal can show only as
// "read/write on closed pipe", as late as the server's write deadline
// (10 s): Connect returns TCP's error at once instead.
func (s *Server) Connect(name string, opts ...nats.Option) (*nats.Conn, error) {
	all := []nats.Option{nats.Name(name), nats.MaxReconnects(-1)}
	if s.self.name != "" {
		all = append(all, nats.UserInfo(s.self.name, s.self.password))
	}
	all = append(all, opts...)
	inProcess := append(slices.Clip(all), nats.InProcessServer(s.Server))
	url := s.tcpURL()
	if url == "" {
		nc, err := nats.Connect("", inProcess...)
		if err != nil {
			return nil, fmt.Errorf("cannot connect to the embedded NATS server: %w", err)
		}
		return nc, nil
	}
	nc, err := nats.Connect(url, all...)
	switch {
	case err == nil:
		return nc, nil
	case refused(err):
		return nil, fmt.Errorf("cannot connect to the embedded NATS server at %s: %w", url, err)
	}
	nc, inErr := nats.Connect("", inProcess...)
	if inErr != nil {
		return nil, fmt.Errorf("cannot connect to the embedded NATS server over TCP at %s: %w; nor in process: %w", url, err, inErr)
	}
	s.log.Warn("cannot connect to the embedded NATS server over TCP: connected in process instead, which costs more CPU per message; "+
		"clients on this host may not reach the server at this address either", "connection", name, "url", url, "err", err)
	return nc, nil
}

// refused reports whether err is the server refusing a client's
// credentials.
func refused(err error) bool {
	for _, r := range []error{nats.ErrAuthorization, nats.ErrAuthExpired, nats.ErrAuthRevoked, nats.ErrAccountAuthExpired} {
		if errors.Is(err, r) {
			return true
		}
	}
	return false
}

// Listened reports whether anyone listens on subject in the node's
// account (Corral's users have no account of their own: the global one):
// a client of this server, or, through the interest the server keeps of
// them, one of a route (a cluster peer) or a leaf node connection. It is
// the server's own view of where to deliver a message on subject (a
// lookup in its subscription cache); a subscription made since may miss a
// message sent just before, as it would have on the wire.
func (s *Server) Listened(subject string) bool {
	return s.GlobalAccount().SubscriptionInterest(subject)
}

// tcpURL is where the node reaches its server over TCP; empty when
// clients need TLS.
func (s *Server) tcpURL() string {
	addr, ok := s.Addr().(*net.TCPAddr)
	if !ok || s.tls {
		return ""
	}
	ip := addr.IP
	if ip.IsUnspecified() {
		ip = net.IPv4(127, 0, 0, 1)
		if addr.IP.To4() == nil {
			ip = net.IPv6loopback
		}
	}
	return "nats://" + net.JoinHostPort(ip.String(), strconv.Itoa(addr.Port))
}

// Start starts an embedded nats-server that leaves signals to the
// node (NoSigs) and logs through slog. Call Shutdown and WaitForShutdown.
//
// The server always listens for clients on TCP (a clustered server cannot
// do without: nats-server starts routing only once its client listener
// runs), and the node connects to it there, or in process (Connect).
// A clustered server is ready for connections before its JetStream is:
// see WaitJetStream.
func Start(cfg Config) (*Server, error) {
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:4222"
	}
	host, port, err := hostPort("listen", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("cannot start NATS server: %w", err)
	}
	opts := &server.Options{
		ServerName:             cfg.Name,
		Host:                   host,
		Port:                   port,
		NoSigs:                 true,
		DisableJetStreamBanner: true,
		MaxPayload:             int32(cmp.Or(cfg.MaxPayload, DefaultMaxPayload)),
	}
	if cfg.JetStream {
		if cfg.StoreDir == "" {
			return nil, errors.New("cannot start NATS server: JetStream needs a store directory")
		}
		opts.JetStream = true
		opts.StoreDir = filepath.Clean(cfg.StoreDir)
	}
	if err := cfg.checkPorts(); err != nil {
		return nil, fmt.Errorf("cannot start NATS server: %w", err)
	}
	open, err := cfg.checkExposure()
	if err != nil {
		return nil, fmt.Errorf("cannot start NATS server: %w", err)
	}
	self, err := cfg.applyAuth(opts)
	if err != nil {
		return nil, fmt.Errorf("cannot start NATS server: %w", err)
	}
	if err := cfg.applyCluster(opts); err != nil {
		return nil, fmt.Errorf("cannot start NATS server: %w", err)
	}
	if err := cfg.applyHTTP(opts); err != nil {
		return nil, fmt.Errorf("cannot start NATS server: %w", err)
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("cannot start NATS server: %w", err)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	sl := &serverLogger{log: logger.With("component", "nats-server")}
	s.SetLoggerV2(sl, false, false, false)
	s.Start()
	// Ready, or failed: nats-server reports a failure to start (a port
	// taken since checkPorts, say) only in its log, as a fatal line.
	for deadline := time.Now().Add(10 * time.Second); !s.ReadyForConnections(50 * time.Millisecond); {
		if fatal := sl.fatal.Load(); fatal != nil {
			s.Shutdown()
			return nil, fmt.Errorf("cannot start NATS server: %s", *fatal)
		}
		if time.Now().After(deadline) {
			s.Shutdown()
			return nil, fmt.Errorf("cannot start NATS server on %s: not ready after 10s", cfg.Listen)
		}
	}
	return &Server{Server: s, self: self, open: open, tls: cfg.TLS != nil, log: logger}, nil
}

// serverLogger routes nats-server's log into slog, and keeps its first
// fatal line for Start.
type serverLogger struct {
	log   *slog.Logger
	fatal atomic.Pointer[string]
}

func (l *serverLogger) Noticef(format string, v ...any) { l.log.Info(fmt.Sprintf(format, v...)) }
func (l *serverLogger) Warnf(format string, v ...any)   { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l *serverLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.fatal.CompareAndSwap(nil, &msg)
	l.log.Error(msg)
}
func (l *serverLogger) Errorf(format string, v ...any) { l.log.Error(fmt.Sprintf(format, v...)) }
func (l *serverLogger) Debugf(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *serverLogger) Tracef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }

// checkPorts fails fast, naming the key to change, when a listener's
// fixed port is taken: nats-server would only say so in its log.
func (cfg Config) checkPorts() error {
	for _, l := range []struct{ what, key, addr string }{
		{"clients", "nats.listen", cfg.Listen},
		{"routes", "nats.cluster.listen", cfg.Cluster.Listen},
		{"leaf nodes", "nats.leaf.listen", cfg.Leaf.Listen},
		{"monitoring", "nats.monitor", cfg.Monitor},
		{"WebSocket clients", "nats.websocket.listen", cfg.WebSocket.Listen},
	} {
		if l.addr == "" {
			continue
		}
		if _, port, err := net.SplitHostPort(l.addr); err != nil || port == "0" || port == "-1" {
			continue // checked by hostPort; a random port is free by definition
		}
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			return fmt.Errorf("cannot listen for %s on %s (%s): %w (stop what uses it, or choose another address)", l.what, l.addr, l.key, unwrapOp(err))
		}
		ln.Close()
	}
	return nil
}

// unwrapOp is the cause of a *net.OpError: "address already in use".
func unwrapOp(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		var se *os.SyscallError
		if errors.As(oe.Err, &se) {
			return se.Err
		}
		return oe.Err
	}
	return err
}
