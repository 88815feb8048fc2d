package api

import (
	"encoding/json"
	"time"
)

// The requests and replies of the control plane (DESIGN.md "Control
// plane"): JSON bodies of the corral.* subjects.

// SpawnRequest asks a node to spawn. Name may be empty on
// corral.spawn.<name>, where the subject names the definition.
type SpawnRequest struct {
	Name     string            `json:"name,omitempty"`
	Metadata json.RawMessage   `json:"metadata,omitempty" jsonschema:"type=object"`
	Env      map[string]string `json:"env,omitempty"`
	Cwd      string            `json:"cwd,omitempty"`
	// Service and Instance make the process an instance of a cluster
	// service (<service>/<k>), kept running by its node: what the
	// reconciler spawns. A node refuses a second process of an instance
	// (409).
	Service  string `json:"service,omitempty"`
	Instance string `json:"instance,omitempty"`
}

// ReloadReply says what a reload of a node's configuration changed.
type ReloadReply struct {
	Node string `json:"node"`
	// Added, Changed and Removed name definitions; they apply to new
	// spawns (running processes keep theirs until they restart).
	Added   []string `json:"added,omitempty"`
	Changed []string `json:"changed,omitempty"`
	Removed []string `json:"removed,omitempty"`
	// Started are the instances started to reach the definitions' counts.
	Started []string `json:"started,omitempty"`
	// NeedsRestart lists the changed keys a reload cannot apply.
	NeedsRestart []string `json:"needsRestart,omitempty"`
}

// StopRequest asks for a stop with a signal (default: the definition's).
type StopRequest struct {
	Signal string `json:"signal,omitempty"`
}

// StopAllRequest stops every running process of a node, or of one name.
type StopAllRequest struct {
	Signal string `json:"signal,omitempty"`
	Name   string `json:"name,omitempty"`
}

// ListRequest filters a listing. Without All, finished processes are left out.
type ListRequest struct {
	Name string `json:"name,omitempty"`
	All  bool   `json:"all,omitempty"`
	// After continues a listing a reply cut short (ListReply.Next): only
	// the processes whose id sorts after it.
	After string `json:"after,omitempty"`
}

// ListReply is one node's answer to a list, and to a stop-all. Its
// processes are in the order of their ids. A reply holds at most the
// server's max_payload: a node with more to list than that sends what
// fits, and says where the rest is.
type ListReply struct {
	Node      string           `json:"node"`
	Processes []ManagedProcess `json:"processes"`
	// Next is the last id listed when more processes follow: ask the node
	// (corral.node.<node>.list) again, the same request with After = Next.
	Next string `json:"next,omitempty"`
	// Rest, in the reply to a stop-all, are the stopped processes the
	// reply could not hold in full, in summary. (They cannot be listed
	// afterwards: beyond the node's retention_max, the first ended are
	// forgotten at once.)
	Rest []ProcessSummary `json:"rest,omitempty"`
	// More counts the stopped processes a stop-all's reply could not even
	// sum up (beyond some 7,000).
	More int `json:"more,omitempty"`
}

// DefinitionsReply is one node's definitions.
type DefinitionsReply struct {
	Node        string           `json:"node"`
	Definitions []DefinitionInfo `json:"definitions"`
	// Shadowed are applied definitions (corralctl apply) this node does
	// not use: its own configuration defines the same names.
	Shadowed []string `json:"shadowed,omitempty"`
}

// LogsRequest asks for the last Lines lines of a process's output (at
// most 10000; default 100), or those written within SinceMs (with Lines,
// the last Lines of those).
type LogsRequest struct {
	Lines   int   `json:"lines,omitempty"`
	SinceMs int64 `json:"sinceMs,omitempty"`
}

// FollowRequest asks the node that owns a process (corral.proc.<id>.follow)
// to publish its output on corral.logs.<id> for a follower, a lease that
// lasts three times RenewMs: the follower repeats the request to renew it.
// The first request of a follower (or one whose lease has expired) gets
// the tail it asks for: Tail lines at most (0 to 10000), of those written
// within SinceMs when it is set. A renewal gets none. A follower that
// stops asks with Release, and its lease ends at once.
type FollowRequest struct {
	// Follower names the follower: 1 to 64 letters, digits, _ or -, made
	// up by the follower (a NUID).
	Follower string `json:"follower"`
	Tail     int    `json:"tail,omitempty"`
	SinceMs  int64  `json:"sinceMs,omitempty"`
	Release  bool   `json:"release,omitempty"`
}

// FollowReply answers a FollowRequest.
type FollowReply struct {
	ProcessID string `json:"processId"`
	Node      string `json:"node"`
	// Renewed: the follower's lease was renewed; Log, Offset and Epoch
	// are not set (nor on the answer to a release).
	Renewed bool `json:"renewed,omitempty"`
	// Log is the tail asked for.
	Log string `json:"log"`
	// Truncated: more was asked for than a reply holds (256 KiB, and the
	// server's max_payload); the oldest lines were left out, and of a
	// last line longer than a reply, its beginning.
	Truncated bool `json:"truncated,omitempty"`
	// Offset is where Log ends in the process's output, counted since
	// Epoch: the output published on corral.logs.<id> from then on
	// carries its offset (header Corral-Log-Offset), so a follower keeps
	// what begins at Offset or later, once.
	Offset int64 `json:"offset"`
	// Epoch names that count: when the node began reading the process's
	// output (UnixNano). A node that restarts and re-adopts the process
	// begins a new one.
	Epoch int64 `json:"epoch"`
	// RenewMs is how often to renew the lease.
	RenewMs int64 `json:"renewMs"`
	// End is set when the process has ended: Log is all there is.
	End *LogEnd `json:"end,omitempty"`
}

// LogEnd says a followed process has ended. It is the body of the last
// message on corral.logs.<id> (header Corral-Log-End), and FollowReply.End.
type LogEnd struct {
	ProcessID string `json:"processId"`
	Status    Status `json:"status" jsonschema:"enum=stopped,enum=crashed"`
	ExitCode  *int   `json:"exitCode" jsonschema:"nullable"`
	Error     string `json:"error,omitempty"`
}

// LogsReply holds a process's output tail.
// TruncatedWhy says why a reply marked Truncated left lines out.
const TruncatedWhy = "a reply holds at most 256 KiB, and no more than the server's max_payload"

type LogsReply struct {
	ProcessID string `json:"processId"`
	Log       string `json:"log"`
	// Truncated: more was asked for than a reply holds (256 KiB, and the
	// server's max_payload); the oldest lines were left out, and of a
	// last line longer than a reply, its beginning.
	Truncated bool `json:"truncated,omitempty"`
}

// NodeInfo describes one node. It is the reply of corral.node.<node>.info,
// the heart of the node's heartbeat (NodeHeartbeat), its record in the
// node registry, and what Control.Nodes returns.
type NodeInfo struct {
	ID        string            `json:"id"`
	Version   string            `json:"version"`
	Labels    map[string]string `json:"labels,omitempty"`
	StartedAt time.Time         `json:"startedAt"`
	// IntervalMs is the node's heartbeat interval: once it missed
	// MissedHeartbeats of them, the node is gone.
	IntervalMs  int64    `json:"intervalMs"`
	Processes   int      `json:"processes"`
	Running     int      `json:"running"`
	Definitions []string `json:"definitions"`
	// Host is the node's host: CPU and memory in use. Absent until the
	// node's first heartbeat.
	Host *HostStats `json:"host,omitempty"`
	// Durable says whether a child's ack of an event waits until
	// JetStream stored it.
	Durable bool `json:"durable"`
	// Dropped counts the messages the node lost on their way to NATS
	// since it started (see Relay.Dropped): the target is zero.
	Dropped uint64 `json:"dropped"`
	// LastSeen is when the node last said it was alive: the time of its
	// heartbeat (the node's clock) or, for a gone node, when it was last
	// heard of (by the registry's or a surviving node's clock).
	LastSeen time.Time `json:"lastSeen,omitzero"`
	// Gone is set by Control.Nodes on a node that missed MissedHeartbeats
	// heartbeats and does not answer: what else is here is its last
	// record.
	Gone bool `json:"gone,omitempty"`
	// Lost is set in the registry record of a gone node by the surviving
	// node that announced the loss on process.node_lost; the node's next
	// record clears it.
	Lost bool `json:"lost,omitempty"`
	// ProcsVersion changes whenever the node's process list changes
	// (corral.node.<node>.procs returns the list), and counts from zero
	// again in each life of the node: a node that sees a version it has
	// no list of in a heartbeat takes the list the heartbeat carries
	// (NodeHeartbeat) or fetches it, so every node knows every other
	// node's processes without the registry.
	ProcsVersion uint64 `json:"procsVersion,omitempty"`
	// Isolated is set by a node that sees fewer than half of the nodes it
	// knows (a network partition cut it off): it declares no node lost.
	Isolated bool `json:"isolated,omitempty"`
}

// NodeHeartbeat is the payload of corral.node.<node>.heartbeat: the node's
// NodeInfo and, in a heartbeat whose ProcsVersion the node's previous
// heartbeat did not have, its process list of that version when it is
// short (at most a few hundred processes), so that the other nodes need
// not ask for it (corral.node.<node>.procs). A node that missed that
// heartbeat sees the new version in the next one and asks.
type NodeHeartbeat struct {
	NodeInfo
	ProcessList *NodeProcesses `json:"processList,omitempty"`
}

// HostStats is what a node's heartbeat says of its host.
type HostStats struct {
	// CPUPercent is the whole host's CPU use since the previous heartbeat,
	// 0 to 100.
	CPUPercent    float64 `json:"cpuPercent"`
	MemUsedBytes  uint64  `json:"memUsedBytes"`
	MemTotalBytes uint64  `json:"memTotalBytes"`
}

// OK is the reply to requests that return nothing else.
type OK struct {
	OK bool `json:"ok"`
}

// NodeProcesses is a node's entry <node>.procs in the registry: its
// processes that had not finished, as last announced. Once the node is
// gone they are listed with status unknown, and requests for them fail
// fast naming the node.
type NodeProcesses struct {
	Node      string           `json:"node"`
	Processes []ProcessSummary `json:"processes"`
	// Version is the node's ProcsVersion when the list was taken.
	Version uint64 `json:"version,omitempty"`
	// StartedAt is the StartedAt of the node's life that took the list
	// (versions count from zero again in each life); zero from nodes of
	// earlier versions.
	StartedAt time.Time `json:"startedAt,omitzero"`
	// Parts: a list longer than one message holds (max_payload: about
	// 7,400 processes in 1 MiB) comes in parts, each with the list's node,
	// version and life. Parts is their number, 0 when the list is whole;
	// Part, from 0, is which this is. In the registry the first part is
	// <node>.procs and part k <node>.procs.<k>; a node answers part k of
	// corral.node.<node>.procs to ProcsRequest{Part: k}.
	Parts int `json:"parts,omitempty"`
	Part  int `json:"part,omitempty"`
}

// ProcsRequest asks a node for a part of its process list
// (corral.node.<node>.procs): the first one when it is empty. Version,
// when set, asks for that version's part (the node keeps the last two it
// split), so that a list that changes at every spawn can still be read
// part after part; a version it no longer has gets the current one's.
type ProcsRequest struct {
	Part    int     `json:"part,omitempty"`
	Version *uint64 `json:"version,omitempty"`
}

// ProcessSummary is what the registry keeps of a process: enough to list
// it and to find its node.
type ProcessSummary struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Node      string    `json:"node"`
	Status    Status    `json:"status"`
	PID       int       `json:"pid"`
	StartedAt time.Time `json:"startedAt"`
	Instance  string    `json:"instance,omitempty"`
	Service   string    `json:"service,omitempty"`
}

// RegistryRequest asks a node for its view of the registry
// (corral.registry).
type RegistryRequest struct {
	// Processes says whose processes come with the view: none (""), those
	// of the nodes the answering node holds for gone (ProcessesGone), or
	// every node's (ProcessesAll).
	Processes string `json:"processes,omitempty" jsonschema:"enum=,enum=gone,enum=all"`
}

// The values of RegistryRequest.Processes.
const (
	ProcessesGone = "gone"
	ProcessesAll  = "all"
)

// RegistryView is a node's view of the node registry, kept from the
// registry and the nodes' heartbeats: the reply of corral.registry.
type RegistryView struct {
	// Node is the node that answered.
	Node  string          `json:"node"`
	Nodes []RegistryEntry `json:"nodes"`
}

// RegistryEntry is one node in a RegistryView.
type RegistryEntry struct {
	// Info is the node's last record or heartbeat.
	Info NodeInfo `json:"info"`
	// AgeMs is how long ago the answering node last heard of this one (a
	// heartbeat or a new record), by its own clock: 0 for itself.
	AgeMs int64 `json:"ageMs"`
	// Processes are its unfinished processes as last announced, when
	// RegistryRequest.Processes asked for them.
	Processes []ProcessSummary `json:"processes,omitempty"`
}
