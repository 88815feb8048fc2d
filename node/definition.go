package node

import (
	"encoding/json"
	"path"
	"regexp"
	"sort"
	"syscall"
	"time"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/client/wire"
)

// Definition describes a kind of process the node can spawn.
// The zero value of every optional field means "use the default".
type Definition struct {
	// Name is a subject token: [A-Za-z0-9_-]{1,64}, not "watchdog".
	Name    string
	Command string
	Args    []string
	Cwd     string
	Env     map[string]string

	// Events maps event names to JSON Schemas (raw JSON). When it is not
	// empty, a child may only emit the events it lists. A nil schema accepts
	// any object.
	Events map[string]json.RawMessage

	// HeartbeatTimeout: no heartbeat for this long makes the process stale,
	// twice as long gets it killed. Zero means the default (30 s); a negative
	// value turns heartbeat monitoring off.
	HeartbeatTimeout time.Duration
	AutoRestart      bool
	// MaxRestarts is the number of consecutive restarts before giving up.
	// Zero means the default (3); -1 means unlimited.
	MaxRestarts int
	// StopSignal is sent to the process group on stop (default SIGTERM).
	StopSignal syscall.Signal
	// StopTimeout is how long stop waits before SIGKILL (default 5 s).
	StopTimeout time.Duration
	// RestartDelay is the first auto-restart backoff (default 1 s; a
	// negative one, RestartAtOnce, restarts at once, with no backoff); it
	// doubles with each consecutive crash up to RestartDelayMax (default
	// 30 s), with up to 10 % jitter.
	RestartDelay    time.Duration
	RestartDelayMax time.Duration
	// RestartResetAfter: a process that ran this long before crashing gets
	// a fresh restart budget (default 60 s).
	RestartResetAfter time.Duration
	// RestartAlways also restarts clean exits (policy "always"; the default
	// policy "on-failure" restarts crashes only). Needs AutoRestart.
	RestartAlways bool
	// StatsInterval is how often the node samples the process tree
	// (default: the supervisor's, 5 s).
	StatsInterval time.Duration
	Limits        Limits

	// SpawnEnv lists, as globs (path.Match: "INPUT_*", "QUALITY"), the
	// environment variables a spawn may set. Empty: none. LD_* and DYLD_*
	// are refused even when listed.
	SpawnEnv []string
	// SpawnCwd lets a spawn choose the working directory.
	SpawnCwd bool
	// User and Group, names or numeric ids, run the child as that user
	// and group (Group defaults to the user's): the node must run as root.
	User, Group string
	// Instances is how many of it the node keeps running from its start,
	// as <name>/0 … <name>/N-1 (instances.go). 0: spawned on demand only.
	Instances int
	// MaxInstances caps how many processes of this definition run on the
	// node at once (0: only the node's MaxProcesses).
	MaxInstances int
	// LogMaxBytes and LogMaxFiles override the node's log rotation for
	// this definition (Config.LogMaxBytes, Config.LogMaxFiles); zero means
	// the node's.
	LogMaxBytes int64
	LogMaxFiles int
	// EmptyEnv starts the child's environment empty instead of from the
	// node's (config inherit_env = false); Env and the spawn's env follow.
	EmptyEnv bool

	// Callbacks, all optional. Each is called on one of the node's
	// goroutines, holding none of the node's locks, so it may call the
	// Supervisor: Spawn, Stop, Restart, EnsureInstances and the rest.
	// Where each runs, and what waits for it meanwhile:
	//   - OnMessage, and OnStats for a child's own stats line: the read
	//     loop of the child's connection, which reads nothing more from
	//     it until the callback returns;
	//   - OnStats for the node's sample: the sampler, which samples no
	//     process and enforces no memory or CPU limit until it returns;
	//   - OnUnhealthy: the process's heartbeat timer;
	//   - OnCrash: the goroutine that saw the exit; for a process Recover
	//     finds dead, Recover's own, once it has let go of the lock
	//     spawns take and before it returns (those of every process it
	//     found dead, in the order it found them);
	//   - OnRestart: the goroutine of the Restart call, or of the
	//     auto-restart's timer, once the replacement runs.
	// So a callback must not block for long: Stop and Restart wait for
	// the process to exit, which can take its StopTimeout and more, so
	// give them a context with a deadline. None may call Close or Detach,
	// which wait for the read loops, the sampler and the goroutines that
	// see exits.
	OnMessage   func(p api.ManagedProcess, msg wire.Message)
	OnCrash     func(p api.ManagedProcess, exitCode int)
	OnUnhealthy func(p api.ManagedProcess)
	OnRestart   func(old, new api.ManagedProcess, attempt int)
	OnStats     func(p api.ManagedProcess, stats wire.Stats)
}

// Limits are hard limits enforced by the node. Zero means no limit.
type Limits struct {
	MaxRuntime    time.Duration
	MaxMemoryMB   float64
	MaxCPUPercent float64
}

// Defaults for Definition fields.
const (
	DefaultHeartbeatTimeout = 30 * time.Second
	DefaultMaxRestarts      = 3
	DefaultStopSignal       = syscall.SIGTERM
	DefaultStopTimeout      = 5 * time.Second
	DefaultRestartDelay     = time.Second
	// RestartAtOnce as a RestartDelay restarts a process as soon as it
	// ended, still counted by MaxRestarts (config restart_delay = "0s").
	RestartAtOnce          = -time.Millisecond
	DefaultRestartDelayMax = 30 * time.Second
	DefaultRestartReset    = 60 * time.Second
	DefaultStatsInterval   = 5 * time.Second
	// MinStatsInterval bounds how often a tree is sampled.
	MinStatsInterval = 50 * time.Millisecond
)

// Reserved names: a process may not be called "watchdog" (its subjects
// would collide with process.watchdog.*), an event may not be called "stats".
const (
	ReservedProcessName = "watchdog"
	ReservedEventName   = "stats"
)

var tokenRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// ValidName reports why name cannot be used as a process name, or nil.
func ValidName(name string) error {
	if !tokenRE.MatchString(name) {
		return api.Errorf(ErrInvalid, "process name %q must be 1 to 64 characters of A-Z a-z 0-9 _ -", name)
	}
	if name == ReservedProcessName {
		return api.Errorf(ErrInvalid, "process name %q is reserved", name)
	}
	return nil
}

// ValidEventName reports why name cannot be used as an event name, or nil.
func ValidEventName(name string) error {
	if !api.ValidToken(name) {
		return api.Errorf(ErrInvalid, "event name %q must be 1 to 64 characters of A-Z a-z 0-9 _ -", name)
	}
	if name == ReservedEventName {
		return api.Errorf(ErrInvalid, "event name %q is reserved", name)
	}
	return nil
}

// withDefaults returns d with zero fields set to their defaults.
func (d Definition) withDefaults() Definition {
	if d.HeartbeatTimeout == 0 {
		d.HeartbeatTimeout = DefaultHeartbeatTimeout
	}
	if d.MaxRestarts == 0 {
		d.MaxRestarts = DefaultMaxRestarts
	}
	if d.StopSignal == 0 {
		d.StopSignal = DefaultStopSignal
	}
	if d.StopTimeout == 0 {
		d.StopTimeout = DefaultStopTimeout
	}
	if d.RestartDelay == 0 {
		d.RestartDelay = DefaultRestartDelay
	}
	if d.RestartDelayMax == 0 {
		d.RestartDelayMax = max(DefaultRestartDelayMax, d.RestartDelay)
	}
	if d.RestartResetAfter == 0 {
		d.RestartResetAfter = DefaultRestartReset
	}
	return d
}

// validate checks everything that does not need compiling.
func (d Definition) validate() error {
	if err := ValidName(d.Name); err != nil {
		return err
	}
	if d.Command == "" {
		return api.Errorf(ErrInvalid, "no command")
	}
	if d.MaxInstances < 0 {
		return api.Errorf(ErrInvalid, "max instances must not be negative")
	}
	if d.Instances < 0 || d.Instances > MaxDefinitionInstances {
		return api.Errorf(ErrInvalid, "instances must be from 0 to %d, got %d", MaxDefinitionInstances, d.Instances)
	}
	if d.MaxInstances > 0 && d.Instances > d.MaxInstances {
		return api.Errorf(ErrInvalid, "instances (%d) is more than max_instances (%d)", d.Instances, d.MaxInstances)
	}
	if d.MaxRestarts < -1 {
		return api.Errorf(ErrInvalid, "max restarts must be -1 (unlimited) or more, got %d", d.MaxRestarts)
	}
	if d.StopTimeout < 0 {
		return api.Errorf(ErrInvalid, "stop timeout must not be negative")
	}
	if d.RestartDelayMax < 0 || d.RestartResetAfter < 0 {
		return api.Errorf(ErrInvalid, "restart delays must not be negative")
	}
	if d.RestartDelayMax != 0 && d.RestartDelayMax < d.RestartDelay {
		return api.Errorf(ErrInvalid, "restart delay max %s is below restart delay %s", d.RestartDelayMax, d.RestartDelay)
	}
	if d.StatsInterval != 0 && d.StatsInterval < MinStatsInterval {
		return api.Errorf(ErrInvalid, "stats interval must be at least %s", MinStatsInterval)
	}
	if d.LogMaxBytes < 0 || (d.LogMaxBytes > 0 && d.LogMaxBytes < MinLogMaxBytes) {
		return api.Errorf(ErrInvalid, "log max bytes must be at least %d", MinLogMaxBytes)
	}
	if d.LogMaxFiles < 0 {
		return api.Errorf(ErrInvalid, "log max files must not be negative")
	}
	if d.Limits.MaxRuntime < 0 || d.Limits.MaxMemoryMB < 0 || d.Limits.MaxCPUPercent < 0 {
		return api.Errorf(ErrInvalid, "limits must not be negative")
	}
	for ev := range d.Events {
		if err := ValidEventName(ev); err != nil {
			return err
		}
	}
	for k := range d.Env {
		if err := validEnvName(k); err != nil {
			return api.Errorf(ErrInvalid, "%w", err)
		}
	}
	for _, g := range d.SpawnEnv {
		if _, err := path.Match(g, ""); err != nil || g == "" {
			return api.Errorf(ErrInvalid, "spawn_env pattern %q is not a glob (e.g. \"INPUT_*\")", g)
		}
	}
	return nil
}

// Info returns the serialisable view of d (after defaults).
func (d Definition) Info() api.DefinitionInfo {
	d = d.withDefaults()
	inherit := !d.EmptyEnv
	hb := d.HeartbeatTimeout.Milliseconds()
	if d.HeartbeatTimeout < 0 {
		hb = 0
	}
	return api.DefinitionInfo{
		Name: d.Name, Command: d.Command, Args: d.Args, Cwd: d.Cwd, Env: d.Env, Events: d.Events,
		HeartbeatTimeoutMs: &hb, AutoRestart: d.AutoRestart, MaxRestarts: d.MaxRestarts,
		StopSignal: api.SignalName(d.StopSignal), StopTimeoutMs: d.StopTimeout.Milliseconds(),
		RestartDelayMs: restartDelayMs(d.RestartDelay), RestartDelayMaxMs: d.RestartDelayMax.Milliseconds(),
		RestartResetMs: d.RestartResetAfter.Milliseconds(), Restart: restartPolicy(d.RestartAlways),
		StatsIntervalMs: d.StatsInterval.Milliseconds(),
		SpawnEnv:        d.SpawnEnv, SpawnCwd: d.SpawnCwd, User: d.User, Group: d.Group, InheritEnv: &inherit,
		MaxInstances: d.MaxInstances, Instances: d.Instances,
		Limits: api.LimitsInfo{MaxRuntimeMs: d.Limits.MaxRuntime.Milliseconds(), MaxMemoryMb: d.Limits.MaxMemoryMB, MaxCpuPercent: d.Limits.MaxCPUPercent},
	}
}

// DefinitionFromInfo builds a Definition from its serialisable form (as
// received by a remote define request).
func DefinitionFromInfo(in api.DefinitionInfo) (Definition, error) {
	d := Definition{
		Name: in.Name, Command: in.Command, Args: in.Args, Cwd: in.Cwd, Env: in.Env, Events: in.Events,
		AutoRestart: in.AutoRestart, MaxRestarts: in.MaxRestarts,
		StopTimeout:       time.Duration(in.StopTimeoutMs) * time.Millisecond,
		RestartDelay:      restartDelay(in.RestartDelayMs),
		RestartDelayMax:   time.Duration(in.RestartDelayMaxMs) * time.Millisecond,
		RestartResetAfter: time.Duration(in.RestartResetMs) * time.Millisecond,
		StatsInterval:     time.Duration(in.StatsIntervalMs) * time.Millisecond,
		SpawnEnv:          in.SpawnEnv, SpawnCwd: in.SpawnCwd, User: in.User, Group: in.Group, MaxInstances: in.MaxInstances,
		Instances: in.Instances,
		EmptyEnv:  in.InheritEnv != nil && !*in.InheritEnv,
		Limits: Limits{MaxRuntime: time.Duration(in.Limits.MaxRuntimeMs) * time.Millisecond,
			MaxMemoryMB: in.Limits.MaxMemoryMb, MaxCPUPercent: in.Limits.MaxCpuPercent},
	}
	if in.HeartbeatTimeoutMs != nil {
		d.HeartbeatTimeout = time.Duration(*in.HeartbeatTimeoutMs) * time.Millisecond
		if d.HeartbeatTimeout == 0 {
			d.HeartbeatTimeout = -1
		}
	}
	switch in.Restart {
	case "", "on-failure":
	case "always":
		d.RestartAlways = true
	default:
		return Definition{}, api.Errorf(ErrInvalid, "restart policy %q is not on-failure or always", in.Restart)
	}
	if in.StopSignal != "" {
		sig, err := api.ParseSignal(in.StopSignal)
		if err != nil {
			return Definition{}, err
		}
		d.StopSignal = sig
	}
	return d, nil
}

// restartDelayMs is RestartDelay on the wire: -1 for RestartAtOnce.
func restartDelayMs(d time.Duration) int64 {
	if d < 0 {
		return -1
	}
	return d.Milliseconds()
}

// restartDelay reads restartDelayMs: a negative number is RestartAtOnce,
// 0 the default.
func restartDelay(ms int64) time.Duration {
	if ms < 0 {
		return RestartAtOnce
	}
	return time.Duration(ms) * time.Millisecond
}

func restartPolicy(always bool) string {
	if always {
		return "always"
	}
	return "on-failure"
}

func sortedNames[V any](m map[string]V) []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}
