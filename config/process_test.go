package config

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/node"
)

func onlyProcess(t *testing.T, doc string) node.Definition {
	t.Helper()
	c := mustParse(t, doc)
	if len(c.Processes) != 1 {
		t.Fatalf("%d processes, want 1", len(c.Processes))
	}
	return c.Processes[0]
}

func TestProcessDefaults(t *testing.T) {
	t.Parallel()
	d := onlyProcess(t, "[processes.worker]\ncommand = \"/bin/worker\"")
	want := node.Definition{
		Name:              "worker",
		Command:           "/bin/worker",
		HeartbeatTimeout:  30 * time.Second,
		MaxRestarts:       3,
		StopSignal:        syscall.SIGTERM,
		StopTimeout:       5 * time.Second,
		RestartDelay:      time.Second,
		RestartDelayMax:   30 * time.Second,
		RestartResetAfter: time.Minute,
	}
	if !reflect.DeepEqual(d, want) {
		t.Errorf("definition = %+v\nwant         %+v", d, want)
	}
}

func TestProcessKeys(t *testing.T) {
	t.Parallel()
	d := onlyProcess(t, `
[processes.Encoder-2]
command = "ffmpeg-wrapper"
args = ["-i", "in.mp4"]
cwd = "/srv/media"
env = { PATH = "/usr/bin", LogLevel = "debug" }
heartbeat_timeout = "1m30s"
auto_restart = true
max_restarts = -1
stop_signal = "INT"
stop_timeout = "250ms"
restart = "always"
restart_delay = "500ms"
restart_delay_max = "10s"
restart_reset_after = "5m"
stats_interval = "2s"
log_max_bytes = 65536
log_max_files = 7

[processes.Encoder-2.limits]
max_runtime = "2h"
max_memory_mb = 512
max_cpu_percent = 150.5
`)
	want := node.Definition{
		Name:              "Encoder-2",
		Command:           "ffmpeg-wrapper",
		Args:              []string{"-i", "in.mp4"},
		Cwd:               "/srv/media",
		Env:               map[string]string{"PATH": "/usr/bin", "LogLevel": "debug"},
		HeartbeatTimeout:  90 * time.Second,
		AutoRestart:       true,
		MaxRestarts:       -1,
		StopSignal:        syscall.SIGINT,
		StopTimeout:       250 * time.Millisecond,
		RestartAlways:     true,
		RestartDelay:      500 * time.Millisecond,
		RestartDelayMax:   10 * time.Second,
		RestartResetAfter: 5 * time.Minute,
		StatsInterval:     2 * time.Second,
		LogMaxBytes:       65536,
		LogMaxFiles:       7,
		Limits:            node.Limits{MaxRuntime: 2 * time.Hour, MaxMemoryMB: 512, MaxCPUPercent: 150.5},
	}
	if !reflect.DeepEqual(d, want) {
		t.Errorf("definition = %+v\nwant         %+v", d, want)
	}
}

func TestHeartbeatTimeout(t *testing.T) {
	t.Parallel()
	for value, want := range map[string]time.Duration{
		`"0s"`:  -1, // off: in node, zero would mean the default
		`"0"`:   -1,
		`"10s"`: 10 * time.Second,
	} {
		d := onlyProcess(t, "[processes.w]\ncommand = \"w\"\nheartbeat_timeout = "+value)
		if d.HeartbeatTimeout != want {
			t.Errorf("heartbeat_timeout = %s: HeartbeatTimeout = %v, want %v", value, d.HeartbeatTimeout, want)
		}
	}
	// Round trip through node's serialisable form: off stays off.
	d := onlyProcess(t, "[processes.w]\ncommand = \"w\"\nheartbeat_timeout = \"0s\"")
	if ms := d.Info().HeartbeatTimeoutMs; ms == nil || *ms != 0 {
		t.Errorf("Info().HeartbeatTimeoutMs = %v, want 0 (off)", ms)
	}
}

func TestSignalNumber(t *testing.T) {
	t.Parallel()
	d := onlyProcess(t, "[processes.w]\ncommand = \"w\"\nstop_signal = 1")
	if d.StopSignal != syscall.SIGHUP {
		t.Errorf("StopSignal = %v, want SIGHUP", d.StopSignal)
	}
}

func TestProcessesSortedByName(t *testing.T) {
	t.Parallel()
	c := mustParse(t, `
[processes.charlie]
command = "c"
[processes.alpha]
command = "a"
[processes.bravo]
command = "b"
`)
	var names []string
	for _, d := range c.Processes {
		names = append(names, d.Name)
	}
	if want := []string{"alpha", "bravo", "charlie"}; !reflect.DeepEqual(names, want) {
		t.Errorf("names = %v, want %v", names, want)
	}
}

func TestEventSchemas(t *testing.T) {
	t.Parallel()
	d := onlyProcess(t, `
[processes.encoder]
command = "enc"

[processes.encoder.events.complete]
type = "object"
required = ["outputPath", "duration"]
additionalProperties = false

[processes.encoder.events.complete.properties]
outputPath = { type = "string", minLength = 1 }
duration = { type = "number" }

[processes.encoder.events.done]
`)
	if len(d.Events) != 2 {
		t.Fatalf("Events = %v, want complete and done", d.Events)
	}
	if raw, ok := d.Events["done"]; !ok || raw != nil {
		t.Errorf(`Events["done"] = %q, %v; want a nil schema (any object)`, raw, ok)
	}

	raw := d.Events["complete"]
	if !json.Valid(raw) {
		t.Fatalf("complete schema is not JSON: %s", raw)
	}
	var got any
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"type":                 "object",
		"required":             []any{"outputPath", "duration"},
		"additionalProperties": false,
		"properties": map[string]any{
			"outputPath": map[string]any{"type": "string", "minLength": float64(1)},
			"duration":   map[string]any{"type": "number"},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("complete schema = %s\nwant %v", raw, want)
	}
}

func TestNoEvents(t *testing.T) {
	t.Parallel()
	for _, doc := range []string{
		"[processes.w]\ncommand = \"w\"",
		"[processes.w]\ncommand = \"w\"\n[processes.w.events]",
	} {
		if d := onlyProcess(t, doc); d.Events != nil {
			t.Errorf("Events = %v, want nil (any event)\n%s", d.Events, doc)
		}
	}
}

func TestProcessErrors(t *testing.T) {
	t.Parallel()
	const ok = "[processes.encoder]\ncommand = \"enc\"\n"
	tests := []struct {
		name string
		doc  string
		key  string
		msg  string
	}{
		{"command missing", "[processes.encoder]\nargs = []", "processes.encoder.command", "cannot load config: processes.encoder.command is required"},
		{"command empty", "[processes.encoder]\ncommand = \"\"", "processes.encoder.command", "processes.encoder.command is required"},
		{"command not a string", "[processes.encoder]\ncommand = [\"enc\"]", "processes.encoder.command", "must be a string, got an array"},
		{"unknown key", ok + "comand = \"x\"", "processes.encoder.comand", `unknown key "processes.encoder.comand"`},
		{"camelCase key", ok + "autoRestart = true", "processes.encoder.autoRestart", `unknown key "processes.encoder.autoRestart"`},
		{"unknown limit", ok + "[processes.encoder.limits]\nmax_memory = 5", "processes.encoder.limits.max_memory", `unknown key "processes.encoder.limits.max_memory"`},
		{"invalid name", "[processes.\"en.coder\"]\ncommand = \"x\"", "processes.en.coder", `process name "en.coder" must be 1 to 64 characters`},
		{"reserved name", "[processes.watchdog]\ncommand = \"x\"", "processes.watchdog", `process name "watchdog" is reserved`},
		{"process not a table", "processes.encoder = \"enc\"", "processes.encoder", "must be a table"},
		{"processes not a table", "processes = 1", "processes", "must be a table"},
		{"bad stop_timeout", ok + "stop_timeout = \"5 seconds\"", "processes.encoder.stop_timeout", `cannot load config: processes.encoder.stop_timeout: invalid duration "5 seconds"`},
		{"zero stop_timeout", ok + "stop_timeout = \"0s\"", "processes.encoder.stop_timeout", "must be more than 0s"},
		{"bad heartbeat_timeout", ok + "heartbeat_timeout = \"soon\"", "processes.encoder.heartbeat_timeout", `invalid duration "soon"`},
		{"heartbeat_timeout number", ok + "heartbeat_timeout = 30", "processes.encoder.heartbeat_timeout", `invalid duration integer 30 (write a string such as "30s")`},
		{"negative heartbeat_timeout", ok + "heartbeat_timeout = \"-1s\"", "processes.encoder.heartbeat_timeout", "must not be negative"},
		{"bad restart policy", ok + "restart = \"sometimes\"", "processes.encoder.restart", `invalid restart policy "sometimes"`},
		{"negative restart_delay", ok + "restart_delay = \"-1s\"", "processes.encoder.restart_delay", "must not be negative"},
		{"delay max below delay", ok + "restart_delay = \"5s\"\nrestart_delay_max = \"1s\"", "processes.encoder.restart_delay_max", "is below restart_delay"},
		{"tiny stats_interval", ok + "stats_interval = \"1ms\"", "processes.encoder.stats_interval", "must be at least 50ms"},
		{"bad max_runtime", ok + "limits.max_runtime = \"1 hour\"", "processes.encoder.limits.max_runtime", `invalid duration "1 hour"`},
		{"max_memory_mb string", ok + "limits.max_memory_mb = \"1G\"", "processes.encoder.limits.max_memory_mb", "must be a number"},
		{"negative max_cpu_percent", ok + "limits.max_cpu_percent = -5", "processes.encoder.limits.max_cpu_percent", "must be 0 (no limit) or more, got -5"},
		{"limits not a table", ok + "limits = 5", "processes.encoder.limits", "must be a table"},
		{"bad signal", ok + "stop_signal = \"SIGFOO\"", "processes.encoder.stop_signal", `unknown signal "SIGFOO"`},
		{"signal not a string", ok + "stop_signal = true", "processes.encoder.stop_signal", "must be a signal name"},
		{"max_restarts zero", ok + "max_restarts = 0", "processes.encoder.max_restarts", "set auto_restart = false"},
		{"max_restarts below -1", ok + "max_restarts = -2", "processes.encoder.max_restarts", "out of range"},
		{"max_restarts string", ok + "max_restarts = \"3\"", "processes.encoder.max_restarts", "must be an integer"},
		{"log_max_bytes too small", ok + "log_max_bytes = 100", "processes.encoder.log_max_bytes", "out of range (expected at least 1024)"},
		{"log_max_bytes string", ok + "log_max_bytes = \"10MB\"", "processes.encoder.log_max_bytes", "must be an integer"},
		{"log_max_files zero", ok + "log_max_files = 0", "processes.encoder.log_max_files", "out of range (expected 1 to 1000)"},
		{"auto_restart string", ok + "auto_restart = \"yes\"", "processes.encoder.auto_restart", "must be a boolean"},
		{"args not an array", ok + "args = \"-v\"", "processes.encoder.args", "must be an array of strings"},
		{"args not strings", ok + "args = [\"-n\", 3]", "processes.encoder.args", "must be an array of strings"},
		{"cwd not a string", ok + "cwd = 1", "processes.encoder.cwd", "must be a string"},
		{"env not a table", ok + "env = [\"A=1\"]", "processes.encoder.env", "must be a table of strings"},
		{"env value not a string", ok + "env = { PORT = 8080 }", "processes.encoder.env.PORT", "must be a string, got integer 8080"},
		{"env name with =", ok + "env = { \"A=B\" = \"x\" }", "processes.encoder.env.A=B", "invalid environment variable name"},
		{"reserved event name", ok + "[processes.encoder.events.stats]", "processes.encoder.events.stats", `event name "stats" is reserved`},
		{"invalid event name", ok + "[processes.encoder.events.\"a.b\"]", "processes.encoder.events.a.b", `event name "a.b" must be`},
		{"event not a table", ok + "events.done = true", "processes.encoder.events.done", "must be a table (a JSON Schema)"},
		{"events not a table", ok + "events = [\"done\"]", "processes.encoder.events", "must be a table of event tables"},
		{"invalid schema", ok + "[processes.encoder.events.done]\ntype = 5", "processes.encoder.events.done", "cannot compile schema"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse(strings.NewReader(tt.doc), nil)
			wantKeyError(t, err, tt.key, tt.msg)
		})
	}
}

// restart_delay = "0s" restarts at once: node.RestartAtOnce, and the
// definition says so on the wire (-1 ms).
func TestZeroRestartDelayIsAtOnce(t *testing.T) {
	cfg, err := Parse(strings.NewReader("[processes.w]\ncommand = \"x\"\nauto_restart = true\nrestart_delay = \"0s\"\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	d := cfg.Processes[0]
	if d.RestartDelay != node.RestartAtOnce {
		t.Fatalf("RestartDelay = %v, want RestartAtOnce", d.RestartDelay)
	}
	info := d.Info()
	if info.RestartDelayMs != -1 {
		t.Errorf("restartDelayMs = %d, want -1", info.RestartDelayMs)
	}
	back, err := node.DefinitionFromInfo(info)
	if err != nil || back.RestartDelay != node.RestartAtOnce {
		t.Errorf("read back: %v %v", back.RestartDelay, err)
	}
}

func TestRequiredIsErrRequired(t *testing.T) {
	t.Parallel()
	_, err := Parse(strings.NewReader("[processes.encoder]\nargs = []"), nil)
	if !errors.Is(err, ErrRequired) {
		t.Errorf("errors.Is(%v, ErrRequired) = false", err)
	}
}

func TestBadSignalIsInvalid(t *testing.T) {
	t.Parallel()
	_, err := Parse(strings.NewReader("[processes.e]\ncommand = \"e\"\nstop_signal = \"SIGFOO\""), nil)
	if !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), `unknown signal "SIGFOO"`) {
		t.Errorf("err = %v, want an api.ErrInvalid error naming the signal", err)
	}
}

func TestSpawnPolicyKeys(t *testing.T) {
	t.Parallel()
	c, err := Parse(strings.NewReader(`
[processes.enc]
command = "enc"
spawn_env = ["INPUT_*", "QUALITY"]
spawn_cwd = true
user = "encoder"
group = "video"
inherit_env = false
[processes.plain]
command = "plain"
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	enc, plain := c.Processes[0], c.Processes[1]
	if !slices.Equal(enc.SpawnEnv, []string{"INPUT_*", "QUALITY"}) || !enc.SpawnCwd || enc.User != "encoder" || enc.Group != "video" || !enc.EmptyEnv {
		t.Errorf("enc = %+v", enc)
	}
	if plain.SpawnEnv != nil || plain.SpawnCwd || plain.EmptyEnv {
		t.Errorf("plain = %+v: spawn overrides must be opt-in and the environment inherited", plain)
	}
	_, err = Parse(strings.NewReader("[processes.x]\ncommand = \"x\"\nspawn_env = [\"[\"]\n"), nil)
	if err == nil || !strings.Contains(err.Error(), `processes.x.spawn_env: "[" is not a glob`) {
		t.Errorf("bad glob: %v", err)
	}
}
