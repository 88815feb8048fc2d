package bus

import "strings"

// Every subject Corral uses is built here and nowhere else.

// Event subjects (DESIGN.md "Subjects and payloads").
const (
	SubjectAll            = "process.>"
	SubjectSpawned        = "process.spawned"
	SubjectConnected      = "process.connected"
	SubjectReconnected    = "process.reconnected"
	SubjectHeartbeat      = "process.heartbeat"
	SubjectStats          = "process.stats"
	SubjectStale          = "process.stale"
	SubjectStopped        = "process.stopped"
	SubjectCrashed        = "process.crashed"
	SubjectRestarted      = "process.restarted"
	SubjectRestartLimit   = "process.restart_limit"
	SubjectLimitsExceeded = "process.limits_exceeded"
	SubjectWatchdogStale  = "process.watchdog.stale"
	SubjectWatchdogKilled = "process.watchdog.killed"
	SubjectNodeLost       = "process.node_lost"
)

// History: what the event stream keeps (see StreamName). It keeps the
// lifecycle messages and the children's events, what people replay; the
// heartbeats and stats, which every process sends every few seconds, go
// to live subscribers only. The stream's subjects say so, except for
// process.<name>.stats: it is within process.*.* with the children's
// events, so those messages carry HeaderExpectedStream: LiveOnly, and the
// stream, whose name is not that, refuses them.

// LiveOnly is the value of HeaderExpectedStream on the messages within the
// history's subjects that it does not keep (no stream has that name).
const LiveOnly = "CORRAL_LIVE_ONLY"

// SubjectProcessStats matches every process.<name>.stats: within the
// history's subjects, yet never kept.
const SubjectProcessStats = "process.*.stats"

// HistorySubjects are the subjects of the event stream.
func HistorySubjects() []string {
	return []string{SubjectSpawned, SubjectConnected, SubjectReconnected, SubjectStale, SubjectStopped,
		SubjectCrashed, SubjectRestarted, SubjectRestartLimit, SubjectLimitsExceeded, SubjectNodeLost,
		"process.*.*"} // process.<name>.<event>, process.watchdog.{stale,killed}
}

// IsLiveOnly reports whether every subject that filter (a subject or a
// wildcard) matches is one the history does not keep: the heartbeats and
// the stats.
func IsLiveOnly(filter string) bool {
	if filter == SubjectHeartbeat || filter == SubjectStats {
		return true
	}
	name, ok := strings.CutPrefix(filter, "process.")
	if !ok {
		return false
	}
	name, ok = strings.CutSuffix(name, ".stats")
	return ok && name != "" && name != ">" && !strings.Contains(name, ".")
}

// ProcessEventSubject is process.<name>.<event>.
func ProcessEventSubject(name, event string) string { return "process." + name + "." + event }

// ProcessStatsSubject is process.<name>.stats.
func ProcessStatsSubject(name string) string { return "process." + name + ".stats" }

// Control-plane subjects.
const (
	controlPrefix = "corral"
	// ServiceName is the micro service every node registers.
	ServiceName = "corral"
	// SubjectPing is $SRV.PING.corral, micro's discovery subject of the
	// service: every node answers.
	SubjectPing = "$SRV.PING." + ServiceName
	// SubjectList is answered by every node (scatter-gather).
	SubjectList = "corral.list"
	// SubjectRegistry is answered by one node with a registry (queue
	// group): its view of the node registry.
	SubjectRegistry = "corral.registry"
	// SubjectReload is answered by every node (scatter-gather): each
	// reloads its configuration file. Operators only.
	SubjectReload = "corral.reload"
)

// Desired-state verbs: corral.desired.<verb>, answered by any one node
// (a queue group). Get is read-only (viewers); the others change the
// desired state (operators).
const (
	DesiredGet    = "get"
	DesiredApply  = "apply"
	DesiredScale  = "scale"
	DesiredDelete = "delete"
)

// DesiredSubject is corral.desired.<verb>.
func DesiredSubject(verb string) string { return controlPrefix + ".desired." + verb }

// Node-addressed verbs: corral.node.<node>.<verb>.
const (
	VerbSpawn       = "spawn"
	VerbList        = "list"
	VerbDefine      = "define"
	VerbDefinitions = "definitions"
	VerbStopAll     = "stopall"
	VerbInfo        = "info"
	VerbReload      = "reload"
	// VerbProcs returns the node's unfinished processes
	// (api.NodeProcesses), what its heartbeat's ProcsVersion versions.
	VerbProcs = "procs"
)

// VerbHeartbeat is not an endpoint: every node publishes its NodeInfo on
// corral.node.<node>.heartbeat each heartbeat interval.
const VerbHeartbeat = "heartbeat"

// NodeHeartbeatSubject is corral.node.<node>.heartbeat.
func NodeHeartbeatSubject(nodeID string) string { return NodeSubject(nodeID, VerbHeartbeat) }

// SubjectNodeHeartbeats matches every node's heartbeat.
const SubjectNodeHeartbeats = controlPrefix + ".node.*." + VerbHeartbeat

// Process-addressed verbs: corral.proc.<id>.<verb>.
const (
	VerbGet     = "get"
	VerbStop    = "stop"
	VerbRestart = "restart"
	VerbSend    = "send"
	VerbLogs    = "logs"
	// VerbFollow leases a follower the process's output on
	// corral.logs.<id> (api.FollowRequest).
	VerbFollow = "follow"
)

// LogSubject is corral.logs.<id>: the output of process id, published by
// its node while someone follows it (VerbFollow), with the headers
// HeaderLogOffset and HeaderLogEpoch, and last a message with
// HeaderLogEnd once it has ended.
func LogSubject(id string) string { return controlPrefix + ".logs." + id }

// SubjectLogs matches every process's output.
const SubjectLogs = controlPrefix + ".logs.>"

// NodeSubject is corral.node.<node>.<verb>.
func NodeSubject(nodeID, verb string) string { return NodeGroup(nodeID) + "." + verb }

func NodeGroup(nodeID string) string { return controlPrefix + ".node." + nodeID }

// ProcSubject is corral.proc.<id>.<verb>.
func ProcSubject(id, verb string) string { return controlPrefix + ".proc." + id + "." + verb }

// procWildcard is corral.proc.<id>.*, what the owning node subscribes to.
func ProcSubjects(id string) string { return controlPrefix + ".proc." + id + ".*" }

// ProcOf returns the process id of a subject corral.proc.<id>.<verb>.
func ProcOf(subject string) (id string, ok bool) {
	rest, ok := strings.CutPrefix(subject, controlPrefix+".proc.")
	if !ok {
		return "", false
	}
	id, verb, ok := strings.Cut(rest, ".")
	if !ok || id == "" || verb == "" || strings.Contains(verb, ".") {
		return "", false
	}
	return id, true
}

// SpawnSubject is corral.spawn.<name>, a queue group of every node that
// defines name.
func SpawnSubject(name string) string { return controlPrefix + ".spawn." + name }
