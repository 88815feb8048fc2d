package bus

import (
	"encoding/json"
	"sort"

	"github.com/corral-run/corral/client/wire"
	"github.com/corral-run/corral/node"
	"github.com/corral-run/corral/schema"
)

// NamedSchema is the JSON Schema of one message Corral publishes, asks or
// answers, named by where it travels.
type NamedSchema struct {
	// Name is the subject for event payloads ("process.spawned"), the
	// subject and role for the control plane ("corral.node.<node>.spawn
	// request"), and "wire …" for the child socket protocol. Placeholders
	// in angle brackets stand for a subject token.
	Name   string          `json:"name"`
	Schema json.RawMessage `json:"schema"`
}

// Schemas returns the JSON Schema of every message on the bus and on the
// child socket, sorted by name. Each is generated (schema.ForValue) from the
// Go type the code marshals, so it cannot drift from what is sent.
//
// Requests that take no body (get, restart, definitions, info) and the
// body of send (any JSON value, handed to the child as it is) have no
// entry.
func Schemas() []NamedSchema {
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
		{SubjectSpawned, node.Spawned{}},
		{SubjectConnected, node.ProcessRef{}},
		{SubjectReconnected, node.Reconnected{}},
		{SubjectHeartbeat, node.ProcessRef{}},
		{SubjectStats, node.StatsReport{}},
		{ProcessStatsSubject(name), node.StatsReport{}},
		{SubjectStale, node.Stale{}},
		{SubjectStopped, node.Stopped{}},
		{SubjectCrashed, node.Crashed{}},
		{SubjectRestarted, node.Restarted{}},
		{SubjectRestartLimit, node.RestartLimit{}},
		{SubjectLimitsExceeded, node.LimitsExceeded{}},
		{SubjectWatchdogStale, node.WatchdogStale{}},
		{SubjectWatchdogKilled, node.WatchdogKilled{}},
		{ProcessEventSubject(name, event), node.EventPayload{}},
		{SubjectNodeLost, NodeLost{}},

		// Control plane, node-addressed.
		{NodeSubject(nodeID, VerbSpawn) + request, SpawnRequest{}},
		{NodeSubject(nodeID, VerbSpawn) + reply, ManagedProcess{}},
		{NodeSubject(nodeID, VerbList) + request, ListRequest{}},
		{NodeSubject(nodeID, VerbList) + reply, ListReply{}},
		{NodeSubject(nodeID, VerbDefine) + request, DefinitionInfo{}},
		{NodeSubject(nodeID, VerbDefine) + reply, DefinitionInfo{}},
		{NodeSubject(nodeID, VerbDefinitions) + reply, DefinitionsReply{}},
		{NodeSubject(nodeID, VerbStopAll) + request, StopAllRequest{}},
		{NodeSubject(nodeID, VerbStopAll) + reply, ListReply{}},
		{NodeSubject(nodeID, VerbInfo) + reply, NodeInfo{}},
		{NodeHeartbeatSubject(nodeID), NodeInfo{}},
		// Any node.
		{SpawnSubject(name) + request, SpawnRequest{}},
		{SpawnSubject(name) + reply, ManagedProcess{}},
		{SubjectList + request, ListRequest{}},
		{SubjectList + reply, ListReply{}},
		{SubjectRegistry + request, RegistryRequest{}},
		{SubjectRegistry + reply, RegistryView{}},
		// Process-addressed.
		{ProcSubject(procID, VerbGet) + reply, ManagedProcess{}},
		{ProcSubject(procID, VerbStop) + request, StopRequest{}},
		{ProcSubject(procID, VerbStop) + reply, ManagedProcess{}},
		{ProcSubject(procID, VerbRestart) + reply, ManagedProcess{}},
		{ProcSubject(procID, VerbSend) + reply, OK{}},
		{ProcSubject(procID, VerbLogs) + request, LogsRequest{}},
		{ProcSubject(procID, VerbLogs) + reply, LogsReply{}},

		// The node registry's records (KV bucket CORRAL_NODES).
		{registrySubject(registryNodeKey(nodeID)), NodeInfo{}},
		{registrySubject(registryProcsKey(nodeID)), NodeProcesses{}},

		// The child wire protocol (DESIGN.md "The child wire protocol").
		{SchemaWireMessage, wire.Message{}},
		{SchemaWireReply, wire.Reply{}},
	}
	out := make([]NamedSchema, 0, len(catalogue))
	for _, c := range catalogue {
		out = append(out, NamedSchema{Name: c.name, Schema: schema.ForValue(c.value)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Names of the wire protocol's schemas in Schemas.
const (
	SchemaWireMessage = "wire child→node message"
	SchemaWireReply   = "wire node→child reply"
)
