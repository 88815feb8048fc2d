package catalog

import (
	"encoding/json"
	"sort"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus"
	"github.com/corral-run/corral/bus/registry"
	"github.com/corral-run/corral/client/wire"
	"github.com/corral-run/corral/schema/schemagen"
)

// NamedSchema is the JSON Schema of one message Corral publishes, asks or
// answers, named by where it travels.
type Named struct {
	// Name is the subject for event payloads ("process.spawned"), the
	// subject and role for the control plane ("corral.node.<node>.spawn
	// request"), and "wire …" for the child socket protocol. Placeholders
	// in angle brackets stand for a subject token.
	Name   string          `json:"name"`
	Schema json.RawMessage `json:"schema"`
}

// Schemas returns the JSON Schema of every message on the bus and on the
// child socket, sorted by name. Each is generated (schemagen.ForValue) from the
// Go type the code marshals, so it cannot drift from what is sent.
//
// Requests that take no body (get, restart, definitions, info) and the
// body of send (any JSON value, handed to the child as it is) have no
// entry.
func All() []Named {
	const (
		nodeID  = "<node>"
		procID  = "<id>"
		name    = "<name>"
		event   = "<event>"
		request = " request"
		reply   = " reply"
	)
	catalogue := []struct {
		name  string
		value any
	}{
		// Events (DESIGN.md "Subjects and payloads").
		{bus.SubjectSpawned, api.Spawned{}},
		{bus.SubjectConnected, api.ProcessRef{}},
		{bus.SubjectReconnected, api.Reconnected{}},
		{bus.SubjectHeartbeat, api.ProcessRef{}},
		{bus.SubjectStats, api.StatsReport{}},
		{bus.ProcessStatsSubject(name), api.StatsReport{}},
		{bus.SubjectStale, api.Stale{}},
		{bus.SubjectStopped, api.Stopped{}},
		{bus.SubjectCrashed, api.Crashed{}},
		{bus.SubjectRestarted, api.Restarted{}},
		{bus.SubjectRestartLimit, api.RestartLimit{}},
		{bus.SubjectLimitsExceeded, api.LimitsExceeded{}},
		{bus.SubjectWatchdogStale, api.WatchdogStale{}},
		{bus.SubjectWatchdogKilled, api.WatchdogKilled{}},
		{bus.ProcessEventSubject(name, event), api.EventPayload{}},
		{bus.SubjectNodeLost, api.NodeLost{}},

		// Control plane, node-addressed.
		{bus.NodeSubject(nodeID, bus.VerbSpawn) + request, api.SpawnRequest{}},
		{bus.NodeSubject(nodeID, bus.VerbSpawn) + reply, api.ManagedProcess{}},
		{bus.NodeSubject(nodeID, bus.VerbList) + request, api.ListRequest{}},
		{bus.NodeSubject(nodeID, bus.VerbList) + reply, api.ListReply{}},
		{bus.NodeSubject(nodeID, bus.VerbDefine) + request, api.DefinitionInfo{}},
		{bus.NodeSubject(nodeID, bus.VerbDefine) + reply, api.DefinitionInfo{}},
		{bus.NodeSubject(nodeID, bus.VerbDefinitions) + reply, api.DefinitionsReply{}},
		{bus.NodeSubject(nodeID, bus.VerbStopAll) + request, api.StopAllRequest{}},
		{bus.NodeSubject(nodeID, bus.VerbStopAll) + reply, api.ListReply{}},
		{bus.NodeSubject(nodeID, bus.VerbInfo) + reply, api.NodeInfo{}},
		{bus.NodeSubject(nodeID, bus.VerbProcs) + request, api.ProcsRequest{}},
		{bus.NodeSubject(nodeID, bus.VerbProcs) + reply, api.NodeProcesses{}},
		{bus.NodeHeartbeatSubject(nodeID), api.NodeHeartbeat{}},
		// Any node.
		{bus.SpawnSubject(name) + request, api.SpawnRequest{}},
		{bus.SpawnSubject(name) + reply, api.ManagedProcess{}},
		{bus.SubjectList + request, api.ListRequest{}},
		{bus.SubjectList + reply, api.ListReply{}},
		{bus.SubjectRegistry + request, api.RegistryRequest{}},
		{bus.SubjectRegistry + reply, api.RegistryView{}},
		// Process-addressed.
		{bus.ProcSubject(procID, bus.VerbGet) + reply, api.ManagedProcess{}},
		{bus.ProcSubject(procID, bus.VerbStop) + request, api.StopRequest{}},
		{bus.ProcSubject(procID, bus.VerbStop) + reply, api.ManagedProcess{}},
		{bus.ProcSubject(procID, bus.VerbRestart) + reply, api.ManagedProcess{}},
		{bus.ProcSubject(procID, bus.VerbSend) + reply, api.OK{}},
		{bus.ProcSubject(procID, bus.VerbLogs) + request, api.LogsRequest{}},
		{bus.ProcSubject(procID, bus.VerbLogs) + reply, api.LogsReply{}},
		{bus.ProcSubject(procID, bus.VerbFollow) + request, api.FollowRequest{}},
		{bus.ProcSubject(procID, bus.VerbFollow) + reply, api.FollowReply{}},
		// A followed process's output is raw bytes; only its last message,
		// the end, is JSON.
		{bus.LogSubject(procID) + " end", api.LogEnd{}},

		// The node registry's records (KV bucket CORRAL_NODES).
		{registry.Subject(registry.NodeKey(nodeID)), api.NodeInfo{}},
		{registry.Subject(registry.ProcsKey(nodeID)), api.NodeProcesses{}},
		{registry.Subject(registry.PartKey(nodeID, 1)), api.NodeProcesses{}},

		// The child wire protocol (DESIGN.md "The child wire protocol").
		{WireMessage, wire.Message{}},
		{WireReply, wire.Reply{}},
	}
	out := make([]Named, 0, len(catalogue))
	for _, c := range catalogue {
		out = append(out, Named{Name: c.name, Schema: schemagen.ForValue(c.value)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Names of the wire protocol's schemas in Schemas.
const (
	WireMessage = "wire child→node message"
	WireReply   = "wire node→child reply"
)
