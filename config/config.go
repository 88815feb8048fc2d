package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/pelletier/go-toml/v2"

	"github.com/corral-run/corral/node"
)

// Config is corrald's validated configuration, with every default applied.
type Config struct {
	Node NodeConfig
	NATS NATSConfig
	// HTTP is the [http] table: the node's HTTP gateway.
	HTTP HTTPConfig
	// Processes are the [processes.<name>] definitions, sorted by name.
	Processes []node.Definition
	// Path is the file Load read ("" for none): what a reload reads again.
	Path string
	// Adjust, when set, is applied to every configuration the node loads
	// from Path, at reload too: the command line's overrides (--detach).
	Adjust func(*Config)
}

// NodeConfig is the [node] table.
type NodeConfig struct {
	// ID names this node on the bus (a subject token). It defaults to the
	// host name, with every character outside [A-Za-z0-9_-] replaced by "-".
	ID string
	// DataDir holds the node's state, absolute. Default ./.corral.
	DataDir string
	// SocketDir holds the children's unix sockets, absolute.
	// Default <DataDir>/sock.
	SocketDir string
	// Transport is how children reach the node. Default unix.
	Transport Transport
	// LogLevel is one of debug, info, warn, error. Default info.
	LogLevel slog.Level
	// LogFormat is text or json. Default text.
	LogFormat LogFormat
	// MaxLineBytes bounds one line of the child wire protocol.
	// Default 1 MiB.
	MaxLineBytes int
	// StatsInterval is how often the node samples each child's process
	// tree, for definitions that set none. Default 5s.
	StatsInterval time.Duration
	// Retention is how long finished processes stay listed (ps --all);
	// RetentionMax caps how many are kept. Defaults 1h and 1000.
	Retention    time.Duration
	RetentionMax int
	// Shutdown is what SIGTERM does to the children: stop them (default)
	// or leave them running for the next node to re-adopt (detach).
	Shutdown ShutdownMode
	// HeartbeatInterval is how often the node announces itself on
	// corral.node.<id>.heartbeat and in the node registry; a node that
	// misses three heartbeats is gone. Default 2s, at least 100ms.
	HeartbeatInterval time.Duration
	// MaxProcesses caps the processes the node runs at once; 0 (the
	// default) derives it from the open-file limit (node.DefaultMaxProcesses).
	MaxProcesses int
	// RemoteDefinitions lets operators define processes over the control
	// plane (corral.node.<id>.define). Default false: define answers 403.
	RemoteDefinitions bool
	// LogMaxBytes is the size at which a process's log file is rotated,
	// and LogMaxFiles how many files its log keeps, the current one
	// included; definitions may set their own. Defaults 10 MiB and 3.
	LogMaxBytes int64
	LogMaxFiles int
	// HandshakeTimeout is how long a connection to a child's socket may
	// take to send its first valid line before it is closed. Default 5s.
	HandshakeTimeout time.Duration
	// Labels are the [node.labels] table (or CORRAL_NODE_LABELS="k=v,…"),
	// matched by spawn placement; nil when there are none. Keys and values
	// are subject tokens.
	Labels map[string]string
}

// ShutdownMode is what the node does with its children when it stops.
type ShutdownMode string

// The shutdown modes.
const (
	ShutdownStop   ShutdownMode = "stop"   // stop every child, then exit
	ShutdownDetach ShutdownMode = "detach" // leave children running, to be re-adopted
)

// NATSConfig is the [nats] table.
type NATSConfig struct {
	// URL is empty to run an embedded NATS server, or a comma-separated
	// list of servers to connect to (the form nats.Connect takes).
	URL string
	// Listen is the embedded server's client address, host:port.
	// Default 127.0.0.1:4222. Unused when URL is set.
	Listen string
	// JetStream turns on JetStream in the embedded server. Default true.
	JetStream bool
	// JetStreamDir is where the embedded server stores JetStream data:
	// <DataDir>/jetstream. It is derived, not a key.
	JetStreamDir string
	// Durable makes a child's ack of an event wait until JetStream stored
	// it, when JetStream is available (embedded with JetStream on, or an
	// external server that has it). Default true.
	Durable bool
	// StreamMaxAge, StreamMaxBytes and StreamReplicas limit the event
	// stream CORRAL_EVENTS. Defaults 24h (0: no age limit), 1 GiB (-1: no
	// size limit) and 0, auto: one copy per JetStream server up to three
	// (the rule is bus.AutoReplicas).
	StreamMaxAge   time.Duration
	StreamMaxBytes int64
	StreamReplicas int
	// StatsStore keeps the latest stats of each process in the JetStream
	// KV bucket CORRAL_STATS (key: the process id), when JetStream is
	// available; the event history never keeps stats. Default false.
	StatsStore bool
	// PublishBuffer is how many messages may wait for NATS: events of the
	// node's children waiting for storage (past it, a child's next durable
	// event is refused; each child is paced by its own), lifecycle
	// messages waiting for storage (past it, published live only), and
	// messages waiting for a reconnection (past it, a child's events wait
	// too). Default 65536.
	PublishBuffer int
	// MaxPayload is the embedded server's largest message, control
	// requests included. Default 1 MiB.
	MaxPayload int
	// Cluster is [nats.cluster]: the embedded server joins a NATS cluster.
	Cluster ClusterConfig
	// Leaf is [nats.leaf]: the embedded server as a leaf node or a hub.
	Leaf LeafConfig
	// Users are [[nats.users]]: the embedded server's client users, each
	// with a role. None: any client may do anything (loopback only,
	// unless Insecure).
	Users []User
	// TLS is [nats.tls]: the embedded server's client TLS, or the node's
	// TLS as a client of external servers.
	TLS *TLSConfig
	// Client is how the node signs in to external servers (with URL).
	Client ClientAuth
	// Insecure lets the embedded server listen where other hosts reach
	// it without authentication (with a warning at every start).
	Insecure bool
	// Monitor is the embedded server's own HTTP monitoring endpoint
	// (/varz, /connz, /jsz…), host:port; empty (the default) runs none.
	// It has no authentication: loopback only, unless Insecure.
	Monitor string
	// WebSocket is [nats.websocket]: the embedded server's clients over
	// WebSocket, for browser apps (nats.js).
	WebSocket WebSocketConfig
}

// WebSocketConfig is the [nats.websocket] table.
type WebSocketConfig struct {
	// Listen is where the embedded server accepts WebSocket clients,
	// host:port; empty (the default) accepts none. They sign in as the
	// [[nats.users]].
	Listen string
	// TLS ([nats.websocket.tls] cert and key) makes it wss://; without
	// it, the listener must be on loopback unless nats.insecure.
	TLS *TLSConfig
}

// Embedded reports whether corrald should run its own NATS server.
func (c NATSConfig) Embedded() bool { return c.URL == "" }

// Defaults of the [nats] event stream and publishing keys.
const (
	DefaultDurable        = true
	DefaultStreamMaxAge   = "24h"
	DefaultStreamMaxBytes = 1 << 30
	DefaultStreamReplicas = 0 // auto
	DefaultPublishBuffer  = 65536
	DefaultMaxPayload     = 1 << 20
)

// Transport is how a child connects to its node.
type Transport string

// The transports of DESIGN.md.
const (
	TransportUnix Transport = "unix" // a unix socket per process under SocketDir
	TransportTCP  Transport = "tcp"  // a port per process on 127.0.0.1
)

// LogFormat is the node's log output format.
type LogFormat string

// The log formats, after log/slog's handlers.
const (
	LogText LogFormat = "text"
	LogJSON LogFormat = "json"
)

// Defaults of the [node] and [nats] keys. Process defaults are node's
// (node.DefaultHeartbeatTimeout and friends).
const (
	DefaultDataDir       = "./.corral"
	DefaultTransport     = TransportUnix
	DefaultLogLevel      = slog.LevelInfo
	DefaultLogFormat     = LogText
	DefaultMaxLineBytes  = 1 << 20
	DefaultNATSListen    = "127.0.0.1:4222"
	DefaultJetStream     = true
	DefaultStatsInterval = "5s"
	DefaultRetention     = "1h"
	DefaultRetentionMax  = 1000
	DefaultShutdown      = ShutdownStop

	DefaultHeartbeatInterval = "2s"
	MinHeartbeatInterval     = 100 * time.Millisecond

	DefaultLogMaxBytes      = node.DefaultLogMaxBytes
	DefaultLogMaxFiles      = node.DefaultLogMaxFiles
	DefaultHandshakeTimeout = "5s"
	MinHandshakeTimeout     = 100 * time.Millisecond

	// SocketDirName is the default socket_dir under data_dir.
	SocketDirName = "sock"
	// JetStreamDirName is the JetStream store under data_dir.
	JetStreamDirName = "jetstream"
)

// Errors a KeyError may wrap. Test with errors.Is.
var (
	ErrUnknownKey = errors.New("unknown key")
	ErrRequired   = errors.New("required")
)

// KeyError says which key of the configuration is wrong and why.
type KeyError struct {
	// Key is the dotted path of the key, e.g. "processes.encoder.command".
	Key string
	// Env is the environment variable the value came from, if it did.
	Env string
	Err error
}

func (e *KeyError) Error() string {
	switch {
	case errors.Is(e.Err, ErrUnknownKey):
		return fmt.Sprintf("unknown key %q", e.Key)
	case errors.Is(e.Err, ErrRequired):
		return e.Key + " is required"
	case e.Env != "":
		return fmt.Sprintf("%s (from %s): %v", e.Key, e.Env, e.Err)
	default:
		return e.Key + ": " + e.Err.Error()
	}
}

func (e *KeyError) Unwrap() error { return e.Err }

// Load reads the configuration file at path, with overrides from the
// process environment. An empty path means no file: defaults and
// environment only.
func Load(path string) (*Config, error) {
	if path == "" {
		return parse("", nil, os.LookupEnv)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot load config: %w", err)
	}
	c, err := parse(path, data, os.LookupEnv)
	if err != nil {
		return nil, err
	}
	c.Path = path
	return c, nil
}

// Parse reads a TOML configuration from r. lookupEnv stands in for
// os.LookupEnv; nil means an empty environment. It is Load without files,
// for tests and for callers that get their configuration elsewhere.
func Parse(r io.Reader, lookupEnv func(string) (string, bool)) (*Config, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("cannot load config: %w", err)
	}
	if lookupEnv == nil {
		lookupEnv = func(string) (string, bool) { return "", false }
	}
	return parse("", data, lookupEnv)
}

// parse decodes and validates data. name, when not empty, is the file
// name put in error messages.
func parse(name string, data []byte, lookupEnv func(string) (string, bool)) (*Config, error) {
	fail := func(err error) (*Config, error) {
		if name != "" {
			return nil, fmt.Errorf("cannot load config: %s: %w", name, err)
		}
		return nil, fmt.Errorf("cannot load config: %w", err)
	}

	// The document is decoded here rather than by viper because viper
	// lower-cases every key, and process names, env variable names and
	// JSON Schema property names ("outputPath") are case-sensitive.
	doc := map[string]any{}
	if err := toml.NewDecoder(bytes.NewReader(data)).Decode(&doc); err != nil {
		var derr *toml.DecodeError
		if errors.As(err, &derr) {
			row, col := derr.Position()
			return fail(fmt.Errorf("line %d, column %d: %w", row, col, err))
		}
		return fail(err)
	}
	if err := checkTopLevel(doc); err != nil {
		return fail(err)
	}

	c := &Config{}
	var err error
	if c.Node, c.NATS, c.HTTP, err = parseSettings(doc, lookupEnv); err != nil {
		return fail(err)
	}
	if c.Processes, err = parseProcesses(doc["processes"]); err != nil {
		return fail(err)
	}
	return c, nil
}

// checkTopLevel refuses top-level keys other than node, nats, http and
// processes, and those when they are not tables.
func checkTopLevel(doc map[string]any) error {
	for _, k := range sortedKeys(doc) {
		switch k {
		case "node", "nats", "http", "processes":
			if _, ok := doc[k].(map[string]any); !ok {
				return &KeyError{Key: k, Err: fmt.Errorf("must be a table, got %s", tomlType(doc[k]))}
			}
		default:
			return &KeyError{Key: k, Err: ErrUnknownKey}
		}
	}
	return nil
}
