package bus

import (
	"encoding/json"
	"sort"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/client/wire"
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
		{SubjectSpawned, api.Spawned{}},
		{SubjectConnected, api.ProcessRef{}},
		{SubjectReconnected, api.Reconnected{}},
		{SubjectHeartbeat, api.ProcessRef{}},
		{SubjectStats, api.StatsReport{}},
		{ProcessStatsSubject(name), api.StatsReport{}},
		{SubjectStale, api.Stale{}},
		{SubjectStopped, api.Stopped{}},
		{SubjectCrashed, api.Crashed{}},
		{SubjectRestarted, api.Restarted{}},
		{SubjectRestartLimit, api.RestartLimit{}},
		{SubjectLimitsExceeded, api.LimitsExceeded{}},
		{SubjectWatchdogStale, api.WatchdogStale{}},
		{SubjectWatchdogKilled, api.WatchdogKilled{}},
		{ProcessEventSubject(name, event), api.EventPayload{}},
		{SubjectNodeLost, api.NodeLost{}},

		// Control plane, node-addressed.
		{NodeSubject(nodeID, VerbSpawn) + request, api.SpawnRequest{}},
		{NodeSubject(nodeID, VerbSpawn) + reply, api.ManagedProcess{}},
		{NodeSubject(nodeID, VerbList) + request, api.ListRequest{}},
		{NodeSubject(nodeID, VerbList) + reply, api.ListReply{}},
		{NodeSubject(nodeID, VerbDefine) + request, api.DefinitionInfo{}},
		{NodeSubject(nodeID, VerbDefine) + reply, api.DefinitionInfo{}},
		{NodeSubject(nodeID, VerbDefinitions) + reply, api.DefinitionsReply{}},
		{NodeSubject(nodeID, VerbStopAll) + request, api.StopAllRequest{}},
		{NodeSubject(nodeID, VerbStopAll) + reply, api.ListReply{}},
		{NodeSubject(nodeID, VerbInfo) + reply, api.NodeInfo{}},
		{NodeHeartbeatSubject(nodeID), api.NodeInfo{}},
		// Any node.
		{SpawnSubject(name) + request, api.SpawnRequest{}},
		{SpawnSubject(name) + reply, api.ManagedProcess{}},
		{SubjectList + request, api.ListRequest{}},
		{SubjectList + reply, api.ListReply{}},
		{SubjectRegistry + request, api.RegistryRequest{}},
		{SubjectRegistry + reply, api.RegistryView{}},
		// Process-addressed.
		{ProcSubject(procID, VerbGet) + reply, api.ManagedProcess{}},
		{ProcSubject(procID, VerbStop) + request, api.StopRequest{}},
		{ProcSubject(procID, VerbStop) + reply, api.ManagedProcess{}},
		{ProcSubject(procID, VerbRestart) + reply, api.ManagedProcess{}},
		{ProcSubject(procID, VerbSend) + reply, api.OK{}},
		{ProcSubject(procID, VerbLogs) + request, api.LogsRequest{}},
		{ProcSubject(procID, VerbLogs) + reply, api.LogsReply{}},

		// The node registry's records (KV bucket CORRAL_NODES).
		{registrySubject(registryNodeKey(nodeID)), api.NodeInfo{}},
		{registrySubject(registryProcsKey(nodeID)), api.NodeProcesses{}},

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
