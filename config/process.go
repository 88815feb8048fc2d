package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path"
	"strings"
	"syscall"
	"time"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/node"
	"github.com/corral-run/corral/schema"
)

// The keys of a [processes.<name>] table, and of its limits table. Under
// events, every <event> table is a JSON Schema and its content is free.
var (
	processKeys = map[string]bool{
		"command": true, "args": true, "cwd": true, "env": true,
		"heartbeat_timeout": true, "auto_restart": true, "max_restarts": true,
		"stop_signal": true, "stop_timeout": true, "limits": true, "events": true,
		"restart_delay": true, "restart_delay_max": true, "restart_reset_after": true,
		"restart": true, "stats_interval": true,
		"spawn_env": true, "spawn_cwd": true, "user": true, "group": true, "inherit_env": true,
		"max_instances": true, "instances": true, "log_max_bytes": true, "log_max_files": true,
	}
	limitKeys = map[string]bool{"max_runtime": true, "max_memory_mb": true, "max_cpu_percent": true}
)

// parseProcesses turns the [processes] table into definitions sorted by name.
func parseProcesses(val any) ([]node.Definition, error) {
	table, _ := val.(map[string]any)
	var defs []node.Definition
	for _, name := range sortedKeys(table) {
		d, err := parseProcess(name, table[name])
		if err != nil {
			return nil, err
		}
		defs = append(defs, d)
	}
	return defs, nil
}

// processTable reads one [processes.<name>] table. Every accessor reports
// the first problem it meets; the caller returns err once at the end.
type processTable struct {
	prefix string // "processes.<name>."
	t      map[string]any
	err    error
}

func (p *processTable) fail(key string, err error) {
	if p.err == nil {
		p.err = &KeyError{Key: p.prefix + key, Err: err}
	}
}

func parseProcess(name string, val any) (node.Definition, error) {
	d := node.Definition{Name: name}
	if err := node.ValidName(name); err != nil {
		return d, &KeyError{Key: "processes." + name, Err: err}
	}
	t, ok := val.(map[string]any)
	if !ok {
		return d, &KeyError{Key: "processes." + name, Err: fmt.Errorf("must be a table, got %s", tomlType(val))}
	}
	p := &processTable{prefix: "processes." + name + ".", t: t}
	for _, k := range sortedKeys(t) {
		if !processKeys[k] {
			return d, &KeyError{Key: p.prefix + k, Err: ErrUnknownKey}
		}
	}

	if d.Command = p.str("command"); d.Command == "" && p.err == nil { // missing or empty
		return d, &KeyError{Key: p.prefix + "command", Err: ErrRequired}
	}
	d.Args = p.strings("args")
	d.Cwd = p.str("cwd")
	d.Env = p.env("env")

	// In node a zero heartbeat timeout means the default and a negative one
	// means off; here "0s" means off, as in the spec.
	d.HeartbeatTimeout = p.duration("heartbeat_timeout", node.DefaultHeartbeatTimeout)
	if d.HeartbeatTimeout == 0 {
		d.HeartbeatTimeout = -1
	}
	d.AutoRestart = p.boolean("auto_restart")
	d.MaxRestarts = p.maxRestarts()
	d.StopSignal = p.signal("stop_signal")
	if d.StopTimeout = p.duration("stop_timeout", node.DefaultStopTimeout); d.StopTimeout == 0 {
		// Zero would mean the default to node: say so rather than surprise.
		p.fail("stop_timeout", errors.New(`must be more than 0s (to kill at once, set stop_signal = "SIGKILL")`))
	}
	// "0s" restarts at once (still counted by max_restarts).
	if d.RestartDelay = p.duration("restart_delay", node.DefaultRestartDelay); d.RestartDelay == 0 {
		d.RestartDelay = node.RestartAtOnce
	}
	d.RestartDelayMax = p.positiveDuration("restart_delay_max", max(node.DefaultRestartDelayMax, d.RestartDelay))
	if d.RestartDelayMax < d.RestartDelay {
		p.fail("restart_delay_max", fmt.Errorf("%s is below restart_delay %s", d.RestartDelayMax, d.RestartDelay))
	}
	d.RestartResetAfter = p.positiveDuration("restart_reset_after", node.DefaultRestartReset)
	switch policy := p.str("restart"); policy {
	case "", "on-failure":
	case "always":
		d.RestartAlways = true
	default:
		p.fail("restart", fmt.Errorf("invalid restart policy %q (expected on-failure or always)", policy))
	}
	if _, set := p.t["stats_interval"]; set {
		if d.StatsInterval = p.duration("stats_interval", 0); d.StatsInterval < node.MinStatsInterval {
			p.fail("stats_interval", fmt.Errorf("must be at least %s", node.MinStatsInterval))
		}
	}
	d.Limits = p.limits()
	d.Events = p.events()
	d.SpawnEnv = p.strings("spawn_env")
	for _, g := range d.SpawnEnv {
		if _, err := path.Match(g, ""); err != nil || g == "" {
			p.fail("spawn_env", fmt.Errorf("%q is not a glob (expected e.g. \"INPUT_*\")", g))
		}
	}
	d.SpawnCwd = p.boolean("spawn_cwd")
	if _, set := p.t["max_instances"]; set {
		if d.MaxInstances = p.integer("max_instances"); d.MaxInstances < 1 && p.err == nil {
			p.fail("max_instances", fmt.Errorf("%d is out of range (expected 1 or more; leave it out for no limit)", d.MaxInstances))
		}
	}
	if _, set := p.t["instances"]; set {
		d.Instances = p.integer("instances")
		switch {
		case p.err != nil:
		case d.Instances < 0 || d.Instances > node.MaxDefinitionInstances:
			p.fail("instances", fmt.Errorf("%d is out of range (expected 0 to %d)", d.Instances, node.MaxDefinitionInstances))
		case d.MaxInstances > 0 && d.Instances > d.MaxInstances:
			p.fail("instances", fmt.Errorf("%d is more than max_instances (%d)", d.Instances, d.MaxInstances))
		}
	}
	d.User, d.Group = p.str("user"), p.str("group")
	if _, set := p.t["inherit_env"]; set {
		d.EmptyEnv = !p.boolean("inherit_env")
	}
	if n, set := p.int64Value("log_max_bytes"); set {
		if err := checkLogMaxBytes(n); err != nil {
			p.fail("log_max_bytes", err)
		}
		d.LogMaxBytes = n
	}
	if n, set := p.int64Value("log_max_files"); set {
		if err := checkLogMaxFiles(n); err != nil {
			p.fail("log_max_files", err)
		}
		d.LogMaxFiles = int(n)
	}
	return d, p.err
}

func (p *processTable) str(key string) string {
	val, ok := p.t[key]
	if !ok {
		return ""
	}
	s, ok := val.(string)
	if !ok {
		p.fail(key, fmt.Errorf("must be a string, got %s", tomlType(val)))
	}
	return s
}

// int64Value reads a TOML integer; set is false when the key is absent.
func (p *processTable) int64Value(key string) (n int64, set bool) {
	val, ok := p.t[key]
	if !ok {
		return 0, false
	}
	n, ok = val.(int64)
	if !ok {
		p.fail(key, fmt.Errorf("must be an integer, got %s", tomlType(val)))
	}
	return n, true
}

func (p *processTable) boolean(key string) bool {
	val, ok := p.t[key]
	if !ok {
		return false
	}
	b, ok := val.(bool)
	if !ok {
		p.fail(key, fmt.Errorf("must be a boolean, got %s", tomlType(val)))
	}
	return b
}

func (p *processTable) strings(key string) []string {
	val, ok := p.t[key]
	if !ok {
		return nil
	}
	a, ok := val.([]any)
	if !ok {
		p.fail(key, fmt.Errorf("must be an array of strings, got %s", tomlType(val)))
		return nil
	}
	list, ok := stringList(a)
	if !ok {
		p.fail(key, errors.New("must be an array of strings"))
	}
	return list
}

func (p *processTable) env(key string) map[string]string {
	val, ok := p.t[key]
	if !ok {
		return nil
	}
	t, ok := val.(map[string]any)
	if !ok {
		p.fail(key, fmt.Errorf("must be a table of strings, got %s", tomlType(val)))
		return nil
	}
	env := make(map[string]string, len(t))
	for _, name := range sortedKeys(t) {
		s, ok := t[name].(string)
		switch {
		case name == "" || strings.ContainsAny(name, "=\x00"):
			p.fail(key+"."+name, fmt.Errorf("invalid environment variable name %q", name))
		case !ok:
			p.fail(key+"."+name, fmt.Errorf("must be a string, got %s", tomlType(t[name])))
		case strings.ContainsRune(s, 0):
			p.fail(key+"."+name, errors.New("must not contain a NUL byte"))
		}
		env[name] = s
	}
	return env
}

// duration reads a Go duration string ("30s", "1m30s"); def when absent.
func (p *processTable) duration(key string, def time.Duration) time.Duration {
	val, ok := p.t[key]
	if !ok {
		return def
	}
	s, ok := val.(string)
	if !ok {
		p.fail(key, fmt.Errorf("invalid duration %s (write a string such as \"30s\")", tomlType(val)))
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		p.fail(key, fmt.Errorf("invalid duration %q (expected e.g. \"30s\", \"1m30s\")", s))
		return def
	}
	if d < 0 {
		p.fail(key, fmt.Errorf("duration %q must not be negative", s))
	}
	return d
}

// positiveDuration is duration, refusing 0 (which node reads as "default").
func (p *processTable) positiveDuration(key string, def time.Duration) time.Duration {
	d := p.duration(key, def)
	if d == 0 {
		p.fail(key, errors.New("must be more than 0s"))
	}
	return d
}

// number reads a TOML integer or float that must not be negative.
func (p *processTable) number(key string) float64 {
	var f float64
	switch val := p.t[key].(type) {
	case nil:
		return 0
	case int64:
		f = float64(val)
	case float64:
		f = val
	default:
		p.fail(key, fmt.Errorf("must be a number, got %s", tomlType(val)))
		return 0
	}
	if f < 0 || math.IsNaN(f) || math.IsInf(f, 0) {
		p.fail(key, fmt.Errorf("must be 0 (no limit) or more, got %v", f))
	}
	return f
}

// integer reads an integer that fits an int32.
func (p *processTable) integer(key string) int {
	val := p.t[key]
	n, ok := val.(int64)
	switch {
	case !ok:
		p.fail(key, fmt.Errorf("must be an integer, got %s", tomlType(val)))
	case n < math.MinInt32 || n > math.MaxInt32:
		p.fail(key, fmt.Errorf("%d is out of range", n))
	}
	return int(n)
}

func (p *processTable) maxRestarts() int {
	val, ok := p.t["max_restarts"]
	if !ok {
		return node.DefaultMaxRestarts
	}
	n, ok := val.(int64)
	switch {
	case !ok:
		p.fail("max_restarts", fmt.Errorf("must be an integer, got %s", tomlType(val)))
	case n == 0:
		// Zero would mean the default to node.
		p.fail("max_restarts", errors.New("0 is not allowed: to never restart, set auto_restart = false"))
	case n < -1 || n > math.MaxInt32:
		p.fail("max_restarts", fmt.Errorf("%d is out of range (expected -1 for unlimited, or 1 or more)", n))
	}
	return int(n)
}

func (p *processTable) signal(key string) syscall.Signal {
	val, ok := p.t[key]
	if !ok {
		return node.DefaultStopSignal
	}
	var s string
	switch val := val.(type) {
	case string:
		s = val
	case int64:
		s = fmt.Sprint(val)
	default:
		p.fail(key, fmt.Errorf("must be a signal name such as \"SIGTERM\", got %s", tomlType(val)))
		return node.DefaultStopSignal
	}
	sig, err := api.ParseSignal(s)
	if err != nil {
		p.fail(key, err)
		return node.DefaultStopSignal
	}
	return sig
}

func (p *processTable) limits() node.Limits {
	val, ok := p.t["limits"]
	if !ok {
		return node.Limits{}
	}
	t, ok := val.(map[string]any)
	if !ok {
		p.fail("limits", fmt.Errorf("must be a table, got %s", tomlType(val)))
		return node.Limits{}
	}
	for _, k := range sortedKeys(t) {
		if !limitKeys[k] {
			p.fail("limits."+k, ErrUnknownKey)
		}
	}
	lp := &processTable{prefix: p.prefix + "limits.", t: t}
	l := node.Limits{
		MaxRuntime:    lp.duration("max_runtime", 0),
		MaxMemoryMB:   lp.number("max_memory_mb"),
		MaxCPUPercent: lp.number("max_cpu_percent"),
	}
	if p.err == nil {
		p.err = lp.err
	}
	return l
}

// events turns each [processes.<name>.events.<event>] table into its JSON
// Schema. An empty table allows the event with any object as data.
func (p *processTable) events() map[string]json.RawMessage {
	val, ok := p.t["events"]
	if !ok {
		return nil
	}
	t, ok := val.(map[string]any)
	if !ok {
		p.fail("events", fmt.Errorf("must be a table of event tables, got %s", tomlType(val)))
		return nil
	}
	if len(t) == 0 {
		return nil
	}
	events := make(map[string]json.RawMessage, len(t))
	for _, ev := range sortedKeys(t) {
		key := "events." + ev
		if err := node.ValidEventName(ev); err != nil {
			p.fail(key, err)
			continue
		}
		table, ok := t[ev].(map[string]any)
		if !ok {
			p.fail(key, fmt.Errorf("must be a table (a JSON Schema), got %s", tomlType(t[ev])))
			continue
		}
		if len(table) == 0 {
			events[ev] = nil
			continue
		}
		raw, err := json.Marshal(table)
		if err != nil {
			p.fail(key, fmt.Errorf("cannot write the schema as JSON: %w", err))
			continue
		}
		// Compiled here only to refuse a bad schema with its key; the
		// node compiles it again when the definition is registered.
		if _, err := schema.Compile(ev, raw); err != nil {
			p.fail(key, err)
			continue
		}
		events[ev] = raw
	}
	return events
}
