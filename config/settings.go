package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/viper"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/node"
)

// EnvPrefix starts the name of every environment variable the package reads.
const EnvPrefix = "CORRAL"

// EnvName returns the environment variable that overrides key:
// "CORRAL_NODE_DATA_DIR" for "node.data_dir".
func EnvName(key string) string {
	return EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// setting is one key of [node] or [nats]. Each can be set from the
// environment.
type setting struct {
	key  string
	kind valueKind
	def  any
}

type valueKind int

const (
	kindString  valueKind = iota
	kindInt               // a TOML integer
	kindBool              // a TOML boolean
	kindServers           // a string of comma-separated servers, or an array of strings
)

// settings lists every [node], [nats] and [http] key. An empty default string means
// the default is computed (node.id from the host name, node.socket_dir
// from node.data_dir).
var settings = []setting{
	{"node.id", kindString, ""},
	{"node.data_dir", kindString, DefaultDataDir},
	{"node.socket_dir", kindString, ""},
	{"node.transport", kindString, string(DefaultTransport)},
	{"node.log_level", kindString, "info"},
	{"node.log_format", kindString, string(DefaultLogFormat)},
	{"node.max_line_bytes", kindInt, DefaultMaxLineBytes},
	{"node.stats_interval", kindString, DefaultStatsInterval},
	{"node.retention", kindString, DefaultRetention},
	{"node.retention_max", kindInt, DefaultRetentionMax},
	{"node.shutdown", kindString, string(DefaultShutdown)},
	{"node.heartbeat_interval", kindString, DefaultHeartbeatInterval},
	{"node.remote_definitions", kindBool, false},
	{"node.max_processes", kindInt, 0},
	{"node.log_max_bytes", kindInt, DefaultLogMaxBytes},
	{"node.log_max_files", kindInt, DefaultLogMaxFiles},
	{"node.handshake_timeout", kindString, DefaultHandshakeTimeout},
	{"nats.url", kindServers, ""},
	{"nats.listen", kindString, DefaultNATSListen},
	{"nats.jetstream", kindBool, DefaultJetStream},
	{"nats.durable", kindBool, DefaultDurable},
	{"nats.stream_max_age", kindString, DefaultStreamMaxAge},
	{"nats.stream_max_bytes", kindInt, DefaultStreamMaxBytes},
	{"nats.stream_replicas", kindInt, DefaultStreamReplicas},
	{"nats.stats_store", kindBool, false},
	{"nats.publish_buffer", kindInt, DefaultPublishBuffer},
	{"nats.max_payload", kindInt, DefaultMaxPayload},
	{"nats.insecure", kindBool, false},
	{"nats.creds", kindString, ""},
	{"nats.nkey", kindString, ""},
	{"nats.user", kindString, ""},
	{"nats.password", kindString, ""},
	{"nats.token", kindString, ""},
	{"nats.tls.cert", kindString, ""},
	{"nats.tls.key", kindString, ""},
	{"nats.tls.ca", kindString, ""},
	{"nats.tls.verify", kindBool, false},
	{"nats.cluster.name", kindString, DefaultClusterName},
	{"nats.cluster.listen", kindString, ""},
	{"nats.cluster.routes", kindServers, ""},
	{"nats.cluster.user", kindString, ""},
	{"nats.cluster.password", kindString, ""},
	{"nats.cluster.tls.cert", kindString, ""},
	{"nats.cluster.tls.key", kindString, ""},
	{"nats.cluster.tls.ca", kindString, ""},
	{"nats.cluster.tls.verify", kindBool, false},
	{"nats.leaf.remotes", kindServers, ""},
	{"nats.leaf.listen", kindString, ""},
	{"nats.leaf.user", kindString, ""},
	{"nats.leaf.password", kindString, ""},
	{"nats.leaf.tls.cert", kindString, ""},
	{"nats.leaf.tls.key", kindString, ""},
	{"nats.leaf.tls.ca", kindString, ""},
	{"nats.leaf.tls.verify", kindBool, false},
	{"nats.monitor", kindString, ""},
	{"nats.websocket.listen", kindString, ""},
	{"nats.websocket.tls.cert", kindString, ""},
	{"nats.websocket.tls.key", kindString, ""},
	{"http.listen", kindString, DefaultHTTPListen},
	{"http.insecure", kindBool, false},
	{"http.tls.cert", kindString, ""},
	{"http.tls.key", kindString, ""},
}

// checkLogMaxBytes and checkLogMaxFiles bound log_max_bytes and
// log_max_files, of [node] and of a process: a file must hold lines, and
// a process's files are bounded in number.
func checkLogMaxBytes(n int64) error {
	if n < node.MinLogMaxBytes {
		return fmt.Errorf("%d is out of range (expected at least %d)", n, node.MinLogMaxBytes)
	}
	return nil
}

func checkLogMaxFiles(n int64) error {
	if n < 1 || n > maxLogFiles {
		return fmt.Errorf("%d is out of range (expected 1 to %d)", n, maxLogFiles)
	}
	return nil
}

// maxLogFiles bounds log_max_files.
const maxLogFiles = 1000

// Bounds of node.max_line_bytes: a line must hold a message envelope, and
// a runaway value would let one child make the node allocate without limit.
const (
	minLineBytes = 1 << 10
	maxLineBytes = 64 << 20
)

// Bounds of the [nats] stream and buffer keys: a stream smaller than a
// megabyte keeps no useful history, and the publish buffer holds whole
// messages in memory.
const (
	minStreamBytes   = 1 << 20
	maxPublishBuffer = 1 << 20
	minPayload       = 64 << 10
	maxPayload       = 64 << 20
)

// parseSettings layers defaults, the file's [node], [nats] and [http] tables and
// the environment with viper, and validates the result.
func parseSettings(doc map[string]any, lookupEnv func(string) (string, bool)) (NodeConfig, NATSConfig, HTTPConfig, error) {
	kinds := make(map[string]valueKind, len(settings))
	v := viper.New()
	for _, s := range settings {
		v.SetDefault(s.key, s.def)
		kinds[s.key] = s.kind
	}

	// The file: only known keys of the right TOML type get through.
	file := map[string]any{}
	for _, section := range []string{"node", "nats", "http"} {
		table, _ := doc[section].(map[string]any)
		values := map[string]any{}
		for _, k := range sortedKeys(table) {
			key := section + "." + k
			if key == labelsKey || key == usersKey || key == tokensKey {
				continue // tables of their own: see parseLabels, parseUsers, parseTokens
			}
			if subTables[key] {
				sub, err := subTableValues(key, table[k], kinds)
				if err != nil {
					return NodeConfig{}, NATSConfig{}, HTTPConfig{}, err
				}
				values[k] = sub
				continue
			}
			kind, ok := kinds[key]
			if !ok {
				return NodeConfig{}, NATSConfig{}, HTTPConfig{}, &KeyError{Key: key, Err: ErrUnknownKey}
			}
			if err := checkFileType(kind, table[k]); err != nil {
				return NodeConfig{}, NATSConfig{}, HTTPConfig{}, &KeyError{Key: key, Err: err}
			}
			values[k] = table[k]
		}
		file[section] = values
	}
	if err := v.MergeConfigMap(file); err != nil {
		return NodeConfig{}, NATSConfig{}, HTTPConfig{}, err
	}

	// The environment. viper's AutomaticEnv reads os.Getenv directly, so
	// the variables are looked up here, through lookupEnv, and set as
	// viper overrides: same names, same precedence, testable without
	// touching the process environment.
	env := map[string]string{}
	for _, s := range settings {
		name := EnvName(s.key)
		if val, ok := lookupEnv(name); ok && val != "" {
			v.Set(s.key, val)
			env[s.key] = name
		}
	}

	r := layers{v: v, env: env}
	n, err := r.node()
	if err != nil {
		return NodeConfig{}, NATSConfig{}, HTTPConfig{}, err
	}
	nodeTable, _ := doc["node"].(map[string]any)
	if n.Labels, err = parseLabels(nodeTable["labels"], lookupEnv); err != nil {
		return NodeConfig{}, NATSConfig{}, HTTPConfig{}, err
	}
	nc, err := r.nats(n)
	if err != nil {
		return NodeConfig{}, NATSConfig{}, HTTPConfig{}, err
	}
	if err := r.natsSecurity(&nc, doc); err != nil {
		return NodeConfig{}, NATSConfig{}, HTTPConfig{}, err
	}
	if err := r.natsExtras(&nc); err != nil {
		return NodeConfig{}, NATSConfig{}, HTTPConfig{}, err
	}
	httpTable, _ := doc["http"].(map[string]any)
	hc, err := r.http(httpTable)
	if err != nil {
		return NodeConfig{}, NATSConfig{}, HTTPConfig{}, err
	}
	return n, nc, hc, nil
}

// checkFileType refuses a file value of the wrong TOML type.
func checkFileType(kind valueKind, val any) error {
	ok := false
	want := ""
	switch kind {
	case kindString:
		_, ok = val.(string)
		want = "a string"
	case kindInt:
		_, ok = val.(int64)
		want = "an integer"
	case kindBool:
		_, ok = val.(bool)
		want = "a boolean"
	case kindServers:
		want = "a string or an array of strings"
		switch val := val.(type) {
		case string:
			ok = true
		case []any:
			_, ok = stringList(val)
		}
	}
	if !ok {
		return fmt.Errorf("must be %s, got %s", want, tomlType(val))
	}
	return nil
}

// layers reads the values viper settled on. File values are already of
// the right type; environment values are strings to convert.
type layers struct {
	v   *viper.Viper
	env map[string]string // key → variable it came from
}

func (r layers) fail(key string, err error) error {
	return &KeyError{Key: key, Env: r.env[key], Err: err}
}

func (r layers) str(key string) string {
	s, _ := r.v.Get(key).(string)
	return s
}

func (r layers) integer(key string) (int, error) {
	switch val := r.v.Get(key).(type) {
	case int:
		return val, nil
	case int64:
		if int64(int(val)) != val {
			return 0, r.fail(key, fmt.Errorf("integer %d out of range", val))
		}
		return int(val), nil
	case string:
		n, err := strconv.Atoi(strings.TrimSpace(val))
		if err != nil {
			return 0, r.fail(key, fmt.Errorf("invalid integer %q", val))
		}
		return n, nil
	default:
		return 0, r.fail(key, fmt.Errorf("must be an integer, got %s", tomlType(val)))
	}
}

// duration reads a duration string ("5s") that must be at least min.
func (r layers) duration(key string, min time.Duration) (time.Duration, error) {
	s, ok := r.v.Get(key).(string)
	if !ok {
		return 0, r.fail(key, fmt.Errorf("invalid duration %s (write a string such as \"30s\")", tomlType(r.v.Get(key))))
	}
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return 0, r.fail(key, fmt.Errorf("invalid duration %q (expected e.g. \"30s\", \"1m30s\")", s))
	}
	if d < min {
		return 0, r.fail(key, fmt.Errorf("duration %q must be at least %s", s, min))
	}
	return d, nil
}

func (r layers) boolean(key string) (bool, error) {
	switch val := r.v.Get(key).(type) {
	case bool:
		return val, nil
	case string:
		b, err := strconv.ParseBool(strings.TrimSpace(val))
		if err != nil {
			return false, r.fail(key, fmt.Errorf("invalid boolean %q (expected true or false)", val))
		}
		return b, nil
	default:
		return false, r.fail(key, fmt.Errorf("must be a boolean, got %s", tomlType(val)))
	}
}

func (r layers) node() (NodeConfig, error) {
	var n NodeConfig
	var err error

	if n.ID = r.str("node.id"); n.ID == "" {
		if n.ID, err = hostNodeID(); err != nil {
			return n, r.fail("node.id", fmt.Errorf("cannot default to the host name: %w; set node.id", err))
		}
	} else if !api.ValidToken(n.ID) {
		return n, r.fail("node.id", fmt.Errorf("invalid node id %q: must be 1 to 64 characters of A-Z a-z 0-9 _ -", n.ID))
	}

	dataDir := r.str("node.data_dir")
	if dataDir == "" {
		return n, r.fail("node.data_dir", errors.New("must not be empty"))
	}
	if n.DataDir, err = filepath.Abs(dataDir); err != nil {
		return n, r.fail("node.data_dir", err)
	}
	if socketDir := r.str("node.socket_dir"); socketDir == "" {
		n.SocketDir = filepath.Join(n.DataDir, SocketDirName)
	} else if n.SocketDir, err = filepath.Abs(socketDir); err != nil {
		return n, r.fail("node.socket_dir", err)
	}

	switch t := Transport(strings.ToLower(r.str("node.transport"))); t {
	case TransportUnix, TransportTCP:
		n.Transport = t
	default:
		return n, r.fail("node.transport", fmt.Errorf("invalid transport %q (expected unix or tcp)", r.str("node.transport")))
	}

	levels := map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError}
	level, ok := levels[strings.ToLower(r.str("node.log_level"))]
	if !ok {
		return n, r.fail("node.log_level", fmt.Errorf("invalid log level %q (expected debug, info, warn or error)", r.str("node.log_level")))
	}
	n.LogLevel = level

	switch f := LogFormat(strings.ToLower(r.str("node.log_format"))); f {
	case LogText, LogJSON:
		n.LogFormat = f
	default:
		return n, r.fail("node.log_format", fmt.Errorf("invalid log format %q (expected text or json)", r.str("node.log_format")))
	}

	if n.MaxLineBytes, err = r.integer("node.max_line_bytes"); err != nil {
		return n, err
	}
	if n.MaxLineBytes < minLineBytes || n.MaxLineBytes > maxLineBytes {
		return n, r.fail("node.max_line_bytes", fmt.Errorf("%d is out of range (expected %d to %d)", n.MaxLineBytes, minLineBytes, maxLineBytes))
	}

	if n.StatsInterval, err = r.duration("node.stats_interval", node.MinStatsInterval); err != nil {
		return n, err
	}
	if n.Retention, err = r.duration("node.retention", time.Second); err != nil {
		return n, err
	}
	if n.RetentionMax, err = r.integer("node.retention_max"); err != nil {
		return n, err
	}
	if n.RetentionMax < 1 {
		return n, r.fail("node.retention_max", fmt.Errorf("%d is out of range (expected 1 or more)", n.RetentionMax))
	}

	if n.HeartbeatInterval, err = r.duration("node.heartbeat_interval", MinHeartbeatInterval); err != nil {
		return n, err
	}
	logMax, err := r.integer("node.log_max_bytes")
	if err != nil {
		return n, err
	}
	if err := checkLogMaxBytes(int64(logMax)); err != nil {
		return n, r.fail("node.log_max_bytes", err)
	}
	n.LogMaxBytes = int64(logMax)
	if n.LogMaxFiles, err = r.integer("node.log_max_files"); err != nil {
		return n, err
	}
	if err := checkLogMaxFiles(int64(n.LogMaxFiles)); err != nil {
		return n, r.fail("node.log_max_files", err)
	}
	if n.HandshakeTimeout, err = r.duration("node.handshake_timeout", MinHandshakeTimeout); err != nil {
		return n, err
	}
	if n.RemoteDefinitions, err = r.boolean("node.remote_definitions"); err != nil {
		return n, err
	}
	if n.MaxProcesses, err = r.integer("node.max_processes"); err != nil {
		return n, err
	}
	if n.MaxProcesses < 0 {
		return n, r.fail("node.max_processes", fmt.Errorf("%d is out of range (expected 0 for the default, or 1 or more)", n.MaxProcesses))
	}

	switch m := ShutdownMode(strings.ToLower(r.str("node.shutdown"))); m {
	case ShutdownStop, ShutdownDetach:
		n.Shutdown = m
	default:
		return n, r.fail("node.shutdown", fmt.Errorf("invalid shutdown mode %q (expected stop or detach)", r.str("node.shutdown")))
	}

	if n.Transport == TransportUnix {
		if err := checkSocketDir(n.SocketDir); err != nil {
			key := "node.socket_dir"
			if r.str(key) == "" {
				key = "node.data_dir" // the socket dir is derived from it
			}
			return n, r.fail(key, err)
		}
	}
	return n, nil
}

func (r layers) nats(n NodeConfig) (NATSConfig, error) {
	var c NATSConfig
	var err error

	if c.URL, err = servers(r.v.Get("nats.url")); err != nil {
		return c, r.fail("nats.url", err)
	}

	c.Listen = r.str("nats.listen")
	host, port, err := net.SplitHostPort(c.Listen)
	if err != nil || host == "" {
		return c, r.fail("nats.listen", fmt.Errorf("invalid address %q (expected host:port, e.g. %s)", c.Listen, DefaultNATSListen))
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return c, r.fail("nats.listen", fmt.Errorf("invalid port %q in %q", port, c.Listen))
	}

	if c.JetStream, err = r.boolean("nats.jetstream"); err != nil {
		return c, err
	}
	if c.Durable, err = r.boolean("nats.durable"); err != nil {
		return c, err
	}
	if c.StreamMaxAge, err = r.duration("nats.stream_max_age", 0); err != nil {
		return c, err
	}
	maxBytes, err := r.integer("nats.stream_max_bytes")
	if err != nil {
		return c, err
	}
	if maxBytes != -1 && maxBytes < minStreamBytes {
		return c, r.fail("nats.stream_max_bytes", fmt.Errorf("%d is out of range (expected -1 for no limit, or at least %d)", maxBytes, minStreamBytes))
	}
	c.StreamMaxBytes = int64(maxBytes)
	if c.StreamReplicas, err = r.integer("nats.stream_replicas"); err != nil {
		return c, err
	}
	if c.StreamReplicas < 0 || c.StreamReplicas > 5 {
		return c, r.fail("nats.stream_replicas", fmt.Errorf("%d is out of range (expected 0 for auto, or 1 to 5)", c.StreamReplicas))
	}
	if c.StatsStore, err = r.boolean("nats.stats_store"); err != nil {
		return c, err
	}
	if c.PublishBuffer, err = r.integer("nats.publish_buffer"); err != nil {
		return c, err
	}
	if c.PublishBuffer < 1 || c.PublishBuffer > maxPublishBuffer {
		return c, r.fail("nats.publish_buffer", fmt.Errorf("%d is out of range (expected 1 to %d)", c.PublishBuffer, maxPublishBuffer))
	}
	if c.MaxPayload, err = r.integer("nats.max_payload"); err != nil {
		return c, err
	}
	if c.MaxPayload < minPayload || c.MaxPayload > maxPayload {
		return c, r.fail("nats.max_payload", fmt.Errorf("%d is out of range (expected %d to %d)", c.MaxPayload, minPayload, maxPayload))
	}
	if err := r.natsTopology(&c); err != nil {
		return c, err
	}
	c.JetStreamDir = filepath.Join(n.DataDir, JetStreamDirName)
	return c, nil
}

// servers checks a nats.url value (a comma-separated string, or an array
// of strings from the file) and returns it as one comma-separated string.
func servers(val any) (string, error) {
	var list []string
	switch val := val.(type) {
	case string:
		if strings.TrimSpace(val) == "" {
			return "", nil
		}
		list = strings.Split(val, ",")
	case []any:
		list, _ = stringList(val)
	}
	for i, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			return "", fmt.Errorf("empty server address in %q", strings.Join(list, ","))
		}
		u, err := url.Parse(s)
		if err != nil {
			return "", fmt.Errorf("invalid server address %q", s)
		}
		if u.Scheme != "" && u.Host == "" && u.Opaque == "" {
			return "", fmt.Errorf("invalid server address %q (expected e.g. nats://host:4222)", s)
		}
		list[i] = s
	}
	return strings.Join(list, ","), nil
}

// hostNodeID is the default node id: the host name made into a subject
// token ("web1.example.com" becomes "web1-example-com").
func hostNodeID() (string, error) {
	host, err := os.Hostname()
	if err != nil {
		return "", err
	}
	id := []byte(host)
	if len(id) > 64 {
		id = id[:64]
	}
	for i, c := range id {
		if !isTokenByte(c) {
			id[i] = '-'
		}
	}
	if len(id) == 0 {
		return "", errors.New("the host name is empty")
	}
	return string(id), nil
}

func isTokenByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}
