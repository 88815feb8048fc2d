package config

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/corral-run/corral/api"
)

// environ returns a lookupEnv over name=value pairs.
func environ(kv ...string) func(string) (string, bool) {
	m := map[string]string{}
	for _, s := range kv {
		name, val, _ := strings.Cut(s, "=")
		m[name] = val
	}
	return func(name string) (string, bool) {
		val, ok := m[name]
		return val, ok
	}
}

func mustParse(t *testing.T, doc string, env ...string) *Config {
	t.Helper()
	c, err := Parse(strings.NewReader(doc), environ(env...))
	if err != nil {
		t.Fatalf("Parse: %v\n%s", err, doc)
	}
	return c
}

func abs(t *testing.T, path string) string {
	t.Helper()
	p, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	c, err := Parse(strings.NewReader(""), nil)
	if err != nil {
		t.Fatal(err)
	}
	host, err := hostNodeID()
	if err != nil {
		t.Fatal(err)
	}
	dataDir := abs(t, ".corral")
	wantNode := NodeConfig{
		ID:            host,
		DataDir:       dataDir,
		SocketDir:     filepath.Join(dataDir, "sock"),
		Transport:     TransportUnix,
		LogLevel:      slog.LevelInfo,
		LogFormat:     LogText,
		MaxLineBytes:  1048576,
		StatsInterval: 5 * time.Second,
		Retention:     time.Hour,
		RetentionMax:  1000,
		Shutdown:      ShutdownStop,

		HeartbeatInterval: 2 * time.Second,
		LogMaxBytes:       10 << 20,
		LogMaxFiles:       3,
		HandshakeTimeout:  5 * time.Second,
	}
	if !reflect.DeepEqual(c.Node, wantNode) {
		t.Errorf("Node = %+v\nwant   %+v", c.Node, wantNode)
	}
	wantNATS := NATSConfig{
		Listen:         "127.0.0.1:4222",
		JetStream:      true,
		JetStreamDir:   filepath.Join(dataDir, "jetstream"),
		Durable:        true,
		StreamMaxAge:   24 * time.Hour,
		StreamMaxBytes: 1 << 30,
		StreamReplicas: 0, // auto
		PublishBuffer:  65536, MaxPayload: 1 << 20,
		Cluster: ClusterConfig{Name: "corral"},
	}
	if !reflect.DeepEqual(c.NATS, wantNATS) {
		t.Errorf("NATS = %+v\nwant   %+v", c.NATS, wantNATS)
	}
	if !c.NATS.Embedded() {
		t.Error("Embedded() = false without a url")
	}
	if len(c.Processes) != 0 {
		t.Errorf("Processes = %v, want none", c.Processes)
	}
}

func TestSettings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		doc   string
		env   []string
		check func(t *testing.T, c *Config)
	}{
		{"id", `node.id = "web1"`, nil, func(t *testing.T, c *Config) {
			if c.Node.ID != "web1" {
				t.Errorf("ID = %q", c.Node.ID)
			}
		}},
		{"data_dir moves socket_dir and jetstream", "[node]\ndata_dir = \"/var/lib/corral\"", nil, func(t *testing.T, c *Config) {
			if c.Node.DataDir != "/var/lib/corral" || c.Node.SocketDir != "/var/lib/corral/sock" || c.NATS.JetStreamDir != "/var/lib/corral/jetstream" {
				t.Errorf("DataDir %q SocketDir %q JetStreamDir %q", c.Node.DataDir, c.Node.SocketDir, c.NATS.JetStreamDir)
			}
		}},
		{"relative data_dir is made absolute", `node.data_dir = "state"`, nil, func(t *testing.T, c *Config) {
			if c.Node.DataDir != abs(t, "state") {
				t.Errorf("DataDir = %q", c.Node.DataDir)
			}
		}},
		{"socket_dir", `node.socket_dir = "/run/corral"`, nil, func(t *testing.T, c *Config) {
			if c.Node.SocketDir != "/run/corral" {
				t.Errorf("SocketDir = %q", c.Node.SocketDir)
			}
		}},
		{"relative socket_dir is relative to the working directory", `node.socket_dir = "s"`, nil, func(t *testing.T, c *Config) {
			if c.Node.SocketDir != abs(t, "s") {
				t.Errorf("SocketDir = %q", c.Node.SocketDir)
			}
		}},
		{"log rotation and handshake", "[node]\nlog_max_bytes = 65536\nlog_max_files = 5", []string{"CORRAL_NODE_HANDSHAKE_TIMEOUT=2s"}, func(t *testing.T, c *Config) {
			if c.Node.LogMaxBytes != 65536 || c.Node.LogMaxFiles != 5 || c.Node.HandshakeTimeout != 2*time.Second {
				t.Errorf("LogMaxBytes %d LogMaxFiles %d HandshakeTimeout %s", c.Node.LogMaxBytes, c.Node.LogMaxFiles, c.Node.HandshakeTimeout)
			}
		}},
		{"transport tcp", `node.transport = "tcp"`, nil, func(t *testing.T, c *Config) {
			if c.Node.Transport != TransportTCP {
				t.Errorf("Transport = %q", c.Node.Transport)
			}
		}},
		{"log_level", `node.log_level = "debug"`, nil, func(t *testing.T, c *Config) {
			if c.Node.LogLevel != slog.LevelDebug {
				t.Errorf("LogLevel = %v", c.Node.LogLevel)
			}
		}},
		{"log_level any case", `node.log_level = "WARN"`, nil, func(t *testing.T, c *Config) {
			if c.Node.LogLevel != slog.LevelWarn {
				t.Errorf("LogLevel = %v", c.Node.LogLevel)
			}
		}},
		{"log_format", `node.log_format = "json"`, nil, func(t *testing.T, c *Config) {
			if c.Node.LogFormat != LogJSON {
				t.Errorf("LogFormat = %q", c.Node.LogFormat)
			}
		}},
		{"max_line_bytes", `node.max_line_bytes = 65536`, nil, func(t *testing.T, c *Config) {
			if c.Node.MaxLineBytes != 65536 {
				t.Errorf("MaxLineBytes = %d", c.Node.MaxLineBytes)
			}
		}},
		{"nats url", `nats.url = "nats://10.0.0.1:4222"`, nil, func(t *testing.T, c *Config) {
			if c.NATS.URL != "nats://10.0.0.1:4222" || c.NATS.Embedded() {
				t.Errorf("URL = %q, Embedded %v", c.NATS.URL, c.NATS.Embedded())
			}
		}},
		{"nats url list", `nats.url = "nats://a:4222, nats://b:4222"`, nil, func(t *testing.T, c *Config) {
			if c.NATS.URL != "nats://a:4222,nats://b:4222" {
				t.Errorf("URL = %q", c.NATS.URL)
			}
		}},
		{"nats url array", `nats.url = ["nats://a:4222", "b:4222"]`, nil, func(t *testing.T, c *Config) {
			if c.NATS.URL != "nats://a:4222,b:4222" {
				t.Errorf("URL = %q", c.NATS.URL)
			}
		}},
		{"listen", `nats.listen = "0.0.0.0:14222"`, nil, func(t *testing.T, c *Config) {
			if c.NATS.Listen != "0.0.0.0:14222" {
				t.Errorf("Listen = %q", c.NATS.Listen)
			}
		}},
		{"jetstream off", `nats.jetstream = false`, nil, func(t *testing.T, c *Config) {
			if c.NATS.JetStream {
				t.Error("JetStream = true")
			}
		}},
		{"event stream and publishing", "[nats]\nurl = \"nats://a:4222\"\ndurable = false\nstream_max_age = \"168h\"\nstream_max_bytes = 10485760\nstream_replicas = 3\nstats_store = true\npublish_buffer = 1024", nil, func(t *testing.T, c *Config) {
			n := c.NATS
			if n.Durable || n.StreamMaxAge != 168*time.Hour || n.StreamMaxBytes != 10<<20 || n.StreamReplicas != 3 || !n.StatsStore || n.PublishBuffer != 1024 {
				t.Errorf("NATS = %+v", n)
			}
		}},
		{"no stream limits", "[nats]\nstream_max_age = \"0s\"\nstream_max_bytes = -1", nil, func(t *testing.T, c *Config) {
			if c.NATS.StreamMaxAge != 0 || c.NATS.StreamMaxBytes != -1 {
				t.Errorf("StreamMaxAge %v StreamMaxBytes %d", c.NATS.StreamMaxAge, c.NATS.StreamMaxBytes)
			}
		}},

		// The environment.
		{"env CORRAL_NODE_ID", "", []string{"CORRAL_NODE_ID=from-env"}, func(t *testing.T, c *Config) {
			if c.Node.ID != "from-env" {
				t.Errorf("ID = %q", c.Node.ID)
			}
		}},
		{"env wins over the file", `node.id = "from-file"`, []string{"CORRAL_NODE_ID=from-env"}, func(t *testing.T, c *Config) {
			if c.Node.ID != "from-env" {
				t.Errorf("ID = %q", c.Node.ID)
			}
		}},
		{"empty env counts as unset", `node.id = "from-file"`, []string{"CORRAL_NODE_ID="}, func(t *testing.T, c *Config) {
			if c.Node.ID != "from-file" {
				t.Errorf("ID = %q", c.Node.ID)
			}
		}},
		{"env CORRAL_NATS_URL", "", []string{"CORRAL_NATS_URL=nats://a:4222,nats://b:4222"}, func(t *testing.T, c *Config) {
			if c.NATS.URL != "nats://a:4222,nats://b:4222" || c.NATS.Embedded() {
				t.Errorf("URL = %q", c.NATS.URL)
			}
		}},
		{"env CORRAL_NODE_TRANSPORT", `node.transport = "unix"`, []string{"CORRAL_NODE_TRANSPORT=tcp"}, func(t *testing.T, c *Config) {
			if c.Node.Transport != TransportTCP {
				t.Errorf("Transport = %q", c.Node.Transport)
			}
		}},
		{"env CORRAL_NODE_DATA_DIR", "", []string{"CORRAL_NODE_DATA_DIR=/srv/corral"}, func(t *testing.T, c *Config) {
			if c.Node.DataDir != "/srv/corral" || c.Node.SocketDir != "/srv/corral/sock" {
				t.Errorf("DataDir %q SocketDir %q", c.Node.DataDir, c.Node.SocketDir)
			}
		}},
		{"env CORRAL_NODE_SOCKET_DIR", "", []string{"CORRAL_NODE_SOCKET_DIR=/tmp/cs"}, func(t *testing.T, c *Config) {
			if c.Node.SocketDir != "/tmp/cs" {
				t.Errorf("SocketDir %q", c.Node.SocketDir)
			}
		}},
		{"env CORRAL_NODE_LOG_LEVEL and LOG_FORMAT", "", []string{"CORRAL_NODE_LOG_LEVEL=error", "CORRAL_NODE_LOG_FORMAT=json"}, func(t *testing.T, c *Config) {
			if c.Node.LogLevel != slog.LevelError || c.Node.LogFormat != LogJSON {
				t.Errorf("LogLevel %v LogFormat %q", c.Node.LogLevel, c.Node.LogFormat)
			}
		}},
		{"env CORRAL_NODE_MAX_LINE_BYTES", "", []string{"CORRAL_NODE_MAX_LINE_BYTES=4096"}, func(t *testing.T, c *Config) {
			if c.Node.MaxLineBytes != 4096 {
				t.Errorf("MaxLineBytes = %d", c.Node.MaxLineBytes)
			}
		}},
		{"env CORRAL_NATS_LISTEN and JETSTREAM", "", []string{"CORRAL_NATS_LISTEN=localhost:5222", "CORRAL_NATS_JETSTREAM=false"}, func(t *testing.T, c *Config) {
			if c.NATS.Listen != "localhost:5222" || c.NATS.JetStream {
				t.Errorf("Listen %q JetStream %v", c.NATS.Listen, c.NATS.JetStream)
			}
		}},
		{"env CORRAL_NATS_DURABLE and stream keys", "", []string{"CORRAL_NATS_URL=nats://a:4222", "CORRAL_NATS_DURABLE=false", "CORRAL_NATS_STREAM_MAX_AGE=1h",
			"CORRAL_NATS_STREAM_MAX_BYTES=2097152", "CORRAL_NATS_STREAM_REPLICAS=5", "CORRAL_NATS_PUBLISH_BUFFER=8"}, func(t *testing.T, c *Config) {
			n := c.NATS
			if n.Durable || n.StreamMaxAge != time.Hour || n.StreamMaxBytes != 2<<20 || n.StreamReplicas != 5 || n.PublishBuffer != 8 {
				t.Errorf("NATS = %+v", n)
			}
		}},
		{"heartbeat_interval", `node.heartbeat_interval = "250ms"`, nil, func(t *testing.T, c *Config) {
			if c.Node.HeartbeatInterval != 250*time.Millisecond {
				t.Errorf("HeartbeatInterval = %v", c.Node.HeartbeatInterval)
			}
		}},
		{"labels", "[node.labels]\nzone = \"eu-1\"\ngpu = \"true\"", nil, func(t *testing.T, c *Config) {
			if want := map[string]string{"zone": "eu-1", "gpu": "true"}; !reflect.DeepEqual(c.Node.Labels, want) {
				t.Errorf("Labels = %v, want %v", c.Node.Labels, want)
			}
		}},
		{"labels inline", `node.labels = { role = "edge" }`, nil, func(t *testing.T, c *Config) {
			if want := map[string]string{"role": "edge"}; !reflect.DeepEqual(c.Node.Labels, want) {
				t.Errorf("Labels = %v, want %v", c.Node.Labels, want)
			}
		}},
		{"empty labels", "[node.labels]", nil, func(t *testing.T, c *Config) {
			if c.Node.Labels != nil {
				t.Errorf("Labels = %v, want nil", c.Node.Labels)
			}
		}},
		{"env CORRAL_NODE_LABELS replaces the file's", "[node.labels]\nzone = \"a\"\ngpu = \"no\"", []string{"CORRAL_NODE_LABELS= zone=b , rack=r7"}, func(t *testing.T, c *Config) {
			if want := map[string]string{"zone": "b", "rack": "r7"}; !reflect.DeepEqual(c.Node.Labels, want) {
				t.Errorf("Labels = %v, want %v", c.Node.Labels, want)
			}
		}},
		{"env CORRAL_NODE_HEARTBEAT_INTERVAL", "", []string{"CORRAL_NODE_HEARTBEAT_INTERVAL=100ms"}, func(t *testing.T, c *Config) {
			if c.Node.HeartbeatInterval != 100*time.Millisecond {
				t.Errorf("HeartbeatInterval = %v", c.Node.HeartbeatInterval)
			}
		}},
		{"unrelated env is ignored", "", []string{"NODE_ID=x", "CORRAL_PROCESSES_ENCODER_COMMAND=x"}, func(t *testing.T, c *Config) {
			if c.Node.ID == "x" || len(c.Processes) != 0 {
				t.Errorf("ID %q Processes %v", c.Node.ID, c.Processes)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.check(t, mustParse(t, tt.doc, tt.env...))
		})
	}
}

func TestEnvName(t *testing.T) {
	t.Parallel()
	for key, want := range map[string]string{
		"node.id":             "CORRAL_NODE_ID",
		"node.data_dir":       "CORRAL_NODE_DATA_DIR",
		"node.max_line_bytes": "CORRAL_NODE_MAX_LINE_BYTES",
		"nats.url":            "CORRAL_NATS_URL",
	} {
		if got := EnvName(key); got != want {
			t.Errorf("EnvName(%q) = %q, want %q", key, got, want)
		}
	}
	// Every setting is reachable from the environment under its EnvName.
	for _, s := range settings {
		if !strings.HasPrefix(EnvName(s.key), "CORRAL_") || strings.ContainsAny(EnvName(s.key), ".abcdefghijklmnopqrstuvwxyz") {
			t.Errorf("EnvName(%q) = %q", s.key, EnvName(s.key))
		}
	}
}

func TestHostNodeID(t *testing.T) {
	t.Parallel()
	id, err := hostNodeID()
	if err != nil {
		t.Fatalf("no host name: %v", err)
	}
	if !api.ValidToken(id) {
		t.Errorf("hostNodeID() = %q, not a subject token", id)
	}
}

// wantKeyError checks that err is a "cannot load config" error naming key.
func wantKeyError(t *testing.T, err error, key, msg string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one about %s", key)
	}
	if !strings.HasPrefix(err.Error(), "cannot load config: ") {
		t.Errorf("error %q does not start with %q", err, "cannot load config: ")
	}
	var ke *KeyError
	if !errors.As(err, &ke) {
		t.Fatalf("error %q is not a *KeyError", err)
	}
	if ke.Key != key {
		t.Errorf("KeyError.Key = %q, want %q (error %q)", ke.Key, key, err)
	}
	if !strings.Contains(err.Error(), key) {
		t.Errorf("error %q does not name %q", err, key)
	}
	if !strings.Contains(err.Error(), msg) {
		t.Errorf("error %q does not say %q", err, msg)
	}
}

func TestSettingErrors(t *testing.T) {
	t.Parallel()
	long := "/" + strings.Repeat("d", 100)
	tests := []struct {
		name string
		doc  string
		env  []string
		key  string
		msg  string
	}{
		{"unknown node key", "[node]\nsockt_dir = \"/tmp\"", nil, "node.sockt_dir", `cannot load config: unknown key "node.sockt_dir"`},
		{"unknown nats key", `nats.jet_stream = true`, nil, "nats.jet_stream", `unknown key "nats.jet_stream"`},
		{"keys are case-sensitive", `node.ID = "x"`, nil, "node.ID", `unknown key "node.ID"`},
		{"unknown top-level key", `nodes.id = "x"`, nil, "nodes", `unknown key "nodes"`},
		{"unknown top-level scalar", `debug = true`, nil, "debug", `unknown key "debug"`},
		{"node not a table", `node = "x"`, nil, "node", `must be a table`},
		{"id not a token", `node.id = "web1.example.com"`, nil, "node.id", `invalid node id "web1.example.com"`},
		{"id from env not a token", "", []string{"CORRAL_NODE_ID=a b"}, "node.id", `node.id (from CORRAL_NODE_ID): invalid node id "a b"`},
		{"id not a string", `node.id = 7`, nil, "node.id", `must be a string, got integer 7`},
		{"empty data_dir", `node.data_dir = ""`, nil, "node.data_dir", "must not be empty"},
		{"transport", `node.transport = "udp"`, nil, "node.transport", `invalid transport "udp" (expected unix or tcp)`},
		{"transport from env", "", []string{"CORRAL_NODE_TRANSPORT=quic"}, "node.transport", `node.transport (from CORRAL_NODE_TRANSPORT): invalid transport "quic"`},
		{"log_level", `node.log_level = "verbose"`, nil, "node.log_level", `invalid log level "verbose"`},
		{"log_format", `node.log_format = "xml"`, nil, "node.log_format", `invalid log format "xml"`},
		{"max_line_bytes type", `node.max_line_bytes = "1MB"`, nil, "node.max_line_bytes", `must be an integer, got string "1MB"`},
		{"max_line_bytes float", `node.max_line_bytes = 1.5`, nil, "node.max_line_bytes", `must be an integer`},
		{"max_line_bytes too small", `node.max_line_bytes = 10`, nil, "node.max_line_bytes", `out of range`},
		{"max_line_bytes too big", `node.max_line_bytes = 10737418240`, nil, "node.max_line_bytes", `out of range`},
		{"stats_interval too small", `node.stats_interval = "1ms"`, nil, "node.stats_interval", `must be at least 50ms`},
		{"stats_interval not a duration", `node.stats_interval = "often"`, nil, "node.stats_interval", `invalid duration "often"`},
		{"retention not a string", `node.retention = 5`, nil, "node.retention", `must be a string, got integer 5`},
		{"bad shutdown mode", `node.shutdown = "abandon"`, nil, "node.shutdown", `invalid shutdown mode "abandon" (expected stop or detach)`},
		{"heartbeat_interval too small", `node.heartbeat_interval = "10ms"`, nil, "node.heartbeat_interval", `must be at least 100ms`},
		{"label value not a string", "[node.labels]\ngpu = true", nil, "node.labels.gpu", `must be a string, got boolean true`},
		{"label value not a token", "[node.labels]\nzone = \"eu 1\"", nil, "node.labels.zone", `invalid value "eu 1" of label "zone"`},
		{"label key not a token", "[node.labels]\n\"a.b\" = \"x\"", nil, "node.labels.a.b", `invalid label key "a.b"`},
		{"labels not a table", `node.labels = "zone=a"`, nil, "node.labels", `must be a table of strings, got string "zone=a"`},
		{"labels from env without =", "", []string{"CORRAL_NODE_LABELS=zone"}, "node.labels", `node.labels (from CORRAL_NODE_LABELS): invalid label "zone" (expected key=value)`},
		{"labels from env with an empty pair", "", []string{"CORRAL_NODE_LABELS=zone=a,,x=y"}, "node.labels", `invalid label "" (expected key=value)`},
		{"labels from env twice", "", []string{"CORRAL_NODE_LABELS=zone=a,zone=b"}, "node.labels", `label "zone" given twice`},
		{"labels from env with an empty value", "", []string{"CORRAL_NODE_LABELS=zone="}, "node.labels", `invalid value "" of label "zone"`},
		{"retention_max zero", `node.retention_max = 0`, nil, "node.retention_max", `out of range`},
		{"log_max_bytes too small", `node.log_max_bytes = 512`, nil, "node.log_max_bytes", `out of range (expected at least 1024)`},
		{"log_max_files zero", `node.log_max_files = 0`, nil, "node.log_max_files", `out of range (expected 1 to 1000)`},
		{"handshake_timeout too small", `node.handshake_timeout = "1ms"`, nil, "node.handshake_timeout", `must be at least 100ms`},
		{"handshake_timeout from env", "", []string{"CORRAL_NODE_HANDSHAKE_TIMEOUT=soon"}, "node.handshake_timeout", `invalid duration "soon"`},
		{"max_line_bytes from env", "", []string{"CORRAL_NODE_MAX_LINE_BYTES=lots"}, "node.max_line_bytes", `invalid integer "lots"`},
		{"url empty element", `nats.url = "nats://a:4222,,nats://b:4222"`, nil, "nats.url", `empty server address`},
		{"url without host", `nats.url = "nats://"`, nil, "nats.url", `invalid server address "nats://"`},
		{"url array of numbers", `nats.url = [4222]`, nil, "nats.url", `must be a string or an array of strings`},
		{"url from env", "", []string{"CORRAL_NATS_URL=nats://a:4222,"}, "nats.url", `nats.url (from CORRAL_NATS_URL): empty server address`},
		{"listen without host", `nats.listen = "4222"`, nil, "nats.listen", `invalid address "4222" (expected host:port`},
		{"listen bad port", `nats.listen = "127.0.0.1:99999"`, nil, "nats.listen", `invalid port "99999"`},
		{"jetstream type", `nats.jetstream = "yes"`, nil, "nats.jetstream", `must be a boolean, got string "yes"`},
		{"jetstream from env", "", []string{"CORRAL_NATS_JETSTREAM=maybe"}, "nats.jetstream", `invalid boolean "maybe"`},
		{"durable type", `nats.durable = 1`, nil, "nats.durable", `must be a boolean, got integer 1`},
		{"stream_max_age not a duration", `nats.stream_max_age = "a day"`, nil, "nats.stream_max_age", `invalid duration "a day"`},
		{"stream_max_age negative", `nats.stream_max_age = "-1h"`, nil, "nats.stream_max_age", `must be at least 0s`},
		{"stream_max_bytes too small", `nats.stream_max_bytes = 1000`, nil, "nats.stream_max_bytes", `out of range (expected -1 for no limit, or at least 1048576)`},
		{"stream_max_bytes zero", `nats.stream_max_bytes = 0`, nil, "nats.stream_max_bytes", `out of range`},
		{"stream_replicas", `nats.stream_replicas = 7`, nil, "nats.stream_replicas", `7 is out of range (expected 0 for auto, or 1 to 5)`},
		{"publish_buffer zero", `nats.publish_buffer = 0`, nil, "nats.publish_buffer", `out of range (expected 1 to 1048576)`},
		{"publish_buffer from env", "", []string{"CORRAL_NATS_PUBLISH_BUFFER=many"}, "nats.publish_buffer", `nats.publish_buffer (from CORRAL_NATS_PUBLISH_BUFFER): invalid integer "many"`},
		{"socket_dir too long", "node.socket_dir = \"" + long + "\"", nil, "node.socket_dir", "bytes unix sockets allow: choose a shorter node.socket_dir"},
		{"data_dir too long for its sockets", "node.data_dir = \"" + long + "\"", nil, "node.data_dir", "choose a shorter node.socket_dir"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse(strings.NewReader(tt.doc), environ(tt.env...))
			wantKeyError(t, err, tt.key, tt.msg)
		})
	}
}

func TestUnknownKeyIsErrUnknownKey(t *testing.T) {
	t.Parallel()
	_, err := Parse(strings.NewReader("[node]\nsockt_dir = \"/tmp\""), nil)
	if !errors.Is(err, ErrUnknownKey) {
		t.Errorf("errors.Is(%v, ErrUnknownKey) = false", err)
	}
	if got, want := err.Error(), `cannot load config: unknown key "node.sockt_dir"`; got != want {
		t.Errorf("error = %q, want %q", got, want)
	}
}

func TestSocketDirLimit(t *testing.T) {
	t.Parallel()
	// The longest socket_dir accepted leaves room for "/<id>.sock".
	room := len("/") + MaxProcessIDLen + len(".sock")
	fits := "/" + strings.Repeat("d", maxSocketPathLen-room-1)
	if _, err := Parse(strings.NewReader(`node.socket_dir = "`+fits+`"`), nil); err != nil {
		t.Errorf("socket_dir of %d bytes: %v", len(fits), err)
	}
	if _, err := Parse(strings.NewReader(`node.socket_dir = "`+fits+`d"`), nil); err == nil {
		t.Errorf("socket_dir of %d bytes accepted, want an error", len(fits)+1)
	}
	// With tcp there are no socket files, so the length does not matter.
	if _, err := Parse(strings.NewReader("[node]\ntransport = \"tcp\"\nsocket_dir = \""+fits+"dddd\""), nil); err != nil {
		t.Errorf("tcp with a long socket_dir: %v", err)
	}
}

func TestSyntaxError(t *testing.T) {
	t.Parallel()
	_, err := Parse(strings.NewReader("[node]\nid = \n"), nil)
	if err == nil || !strings.Contains(err.Error(), "cannot load config: line 2") {
		t.Errorf("error = %v, want one naming line 2", err)
	}
}

func TestLoad(t *testing.T) {
	t.Parallel()
	if _, err := Load(""); err != nil {
		t.Errorf("Load(\"\") (defaults and environment only) = %v", err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.toml")); err == nil || !strings.HasPrefix(err.Error(), "cannot load config: ") {
		t.Errorf("Load(missing) = %v, want a cannot load config error", err)
	}

	path := filepath.Join(t.TempDir(), "corral.toml")
	if err := os.WriteFile(path, []byte("[node]\nsockt_dir = \"/tmp\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if want := "cannot load config: " + path + `: unknown key "node.sockt_dir"`; err == nil || err.Error() != want {
		t.Errorf("Load = %v, want %s", err, want)
	}
}
