package api

import "encoding/json"

// The cluster's desired state (corralctl apply): services, kept running
// across the nodes by the reconciler, and applied definitions, loaded by
// the nodes that take them. It lives in the JetStream KV bucket
// CORRAL_DESIRED; the corral.desired.* requests read and change it.

// ServiceSpec is one [services.<name>] table: Instances processes of the
// definition Process, named <name>/0 … <name>/N-1, on the nodes whose
// labels match Labels, at most MaxPerNode on one node (0: no limit).
type ServiceSpec struct {
	Name       string            `json:"name"`
	Process    string            `json:"process"`
	Instances  int               `json:"instances"`
	Labels     map[string]string `json:"labels,omitempty"`
	MaxPerNode int               `json:"maxPerNode,omitempty"`
	Metadata   json.RawMessage   `json:"metadata,omitempty" jsonschema:"type=object"`
}

// AppliedDefinition is one [processes.<name>] table of an applied file:
// a definition for every node with remote_definitions = true whose labels
// match Nodes (all of them when it is empty).
type AppliedDefinition struct {
	Definition DefinitionInfo    `json:"definition"`
	Nodes      map[string]string `json:"nodes,omitempty"`
}

// DesiredState is the whole desired state, sorted by name.
type DesiredState struct {
	Services    []ServiceSpec       `json:"services"`
	Definitions []AppliedDefinition `json:"definitions"`
	// Reconciler is the node that places the services now ("" when none
	// holds the lease).
	Reconciler string `json:"reconciler,omitempty"`
}

// ApplyRequest is an apply: a TOML document of [services.<name>] and
// [processes.<name>] tables, each added or replacing the one of its name.
type ApplyRequest struct {
	TOML string `json:"toml"`
}

// ApplyReply names what an apply added, changed and left as it was.
type ApplyReply struct {
	Created   []string `json:"created,omitempty"`
	Updated   []string `json:"updated,omitempty"`
	Unchanged []string `json:"unchanged,omitempty"`
}

// ScaleRequest sets a service's instance count.
type ScaleRequest struct {
	Service   string `json:"service"`
	Instances int    `json:"instances"`
}

// DeleteRequest removes a service (its instances are stopped) or an
// applied definition (nodes drop it; running processes keep it).
type DeleteRequest struct {
	// Kind is "service" or "definition".
	Kind string `json:"kind" jsonschema:"enum=service,enum=definition"`
	Name string `json:"name"`
}
