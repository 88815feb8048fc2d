package embedded

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
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
	// connects in process as a user of its own, made up at start.
	Users []User
	// TLS, when set, makes client connections use TLS (and, with Verify,
	// present a certificate the CA signed).
	TLS *TLS
	// Insecure lets a listener that other hosts can reach (not loopback)
	// run without authentication; Start refuses it otherwise
	// (ErrInsecure). Server.Insecure lists such listeners, for the node
	// to warn about.
	Insecure bool
}

// Server is a running embedded nats-server.
type Server struct {
	*server.Server
	self nodeUser // the node's own user; empty without users
	open []string // listeners open to other hosts without authentication
}

// Insecure lists the listeners other hosts can reach without
// authentication (allowed by Config.Insecure): each deserves a warning.
func (s *Server) Insecure() []string { return s.open }

// Connect connects the node to its server in process (no TCP), as its own
// user when the server has users.
func (s *Server) Connect(name string, opts ...nats.Option) (*nats.Conn, error) {
	all := []nats.Option{nats.InProcessServer(s.Server), nats.Name(name), nats.MaxReconnects(-1)}
	if s.self.name != "" {
		all = append(all, nats.UserInfo(s.self.name, s.self.password))
	}
	nc, err := nats.Connect("", append(all, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("cannot connect to the embedded NATS server: %w", err)
	}
	return nc, nil
}

// Start starts an embedded nats-server that leaves signals to the
// node (NoSigs) and logs through slog. Call Shutdown and WaitForShutdown.
//
// The server always listens for clients on TCP (a clustered server cannot
// do without: nats-server starts routing only once its client listener
// runs), while the node itself connects in process (ConnectInProcess).
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
		MaxPayload:             8 << 20,
	}
	if cfg.JetStream {
		if cfg.StoreDir == "" {
			return nil, errors.New("cannot start NATS server: JetStream needs a store directory")
		}
		opts.JetStream = true
		opts.StoreDir = filepath.Clean(cfg.StoreDir)
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
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("cannot start NATS server: %w", err)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	s.SetLoggerV2(&serverLogger{log: logger.With("component", "nats-server")}, false, false, false)
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("cannot start NATS server on %s: not ready after 10s", cfg.Listen)
	}
	return &Server{Server: s, self: self, open: open}, nil
}

// serverLogger routes nats-server's log into slog.
type serverLogger struct{ log *slog.Logger }

func (l *serverLogger) Noticef(format string, v ...any) { l.log.Info(fmt.Sprintf(format, v...)) }
func (l *serverLogger) Warnf(format string, v ...any)   { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l *serverLogger) Fatalf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l *serverLogger) Errorf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l *serverLogger) Debugf(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *serverLogger) Tracef(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }
