package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"

	"github.com/pelletier/go-toml/v2"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/node"
)

// Apply is a document for `corralctl apply -f FILE.toml`: the cluster's
// desired state, as [services.<name>] and [processes.<name>] tables.
type Apply struct {
	Services    []api.ServiceSpec
	Definitions []AppliedDefinition
}

// AppliedDefinition is a [processes.<name>] table of an apply document:
// a definition, with the node labels (nodes = { k = "v" }) that select
// the nodes that load it.
type AppliedDefinition struct {
	Definition node.Definition
	Nodes      map[string]string
}

// MaxServiceInstances bounds a service's instances.
const MaxServiceInstances = node.MaxDefinitionInstances

var serviceKeys = map[string]bool{"process": true, "instances": true, "labels": true, "max_per_node": true, "metadata": true}

// ParseApply reads an apply document. Every table is checked as a node
// would check it; the first problem is the error, naming its key.
func ParseApply(data []byte) (Apply, error) {
	var out Apply
	doc := map[string]any{}
	if err := toml.NewDecoder(bytes.NewReader(data)).Decode(&doc); err != nil {
		var derr *toml.DecodeError
		if errors.As(err, &derr) {
			row, col := derr.Position()
			return out, fmt.Errorf("line %d, column %d: %w", row, col, err)
		}
		return out, err
	}
	for _, k := range sortedKeys(doc) {
		if k != "services" && k != "processes" {
			return out, &KeyError{Key: k, Err: fmt.Errorf("%w (an apply file has [services.<name>] and [processes.<name>] tables)", ErrUnknownKey)}
		}
		if _, ok := doc[k].(map[string]any); !ok {
			return out, &KeyError{Key: k, Err: fmt.Errorf("must be a table, got %s", tomlType(doc[k]))}
		}
	}
	if len(doc) == 0 {
		return out, errors.New("nothing to apply: no [services.<name>] or [processes.<name>] table")
	}
	services, _ := doc["services"].(map[string]any)
	for _, name := range sortedKeys(services) {
		s, err := parseService(name, services[name])
		if err != nil {
			return out, err
		}
		out.Services = append(out.Services, s)
	}
	processes, _ := doc["processes"].(map[string]any)
	for _, name := range sortedKeys(processes) {
		t, ok := processes[name].(map[string]any)
		if !ok {
			return out, &KeyError{Key: "processes." + name, Err: fmt.Errorf("must be a table, got %s", tomlType(processes[name]))}
		}
		t = maps.Clone(t)
		nodes, err := labelTable("processes."+name+".nodes", t["nodes"])
		if err != nil {
			return out, err
		}
		delete(t, "nodes")
		if _, set := t["instances"]; set {
			return out, &KeyError{Key: "processes." + name + ".instances", Err: errors.New("an applied definition has no instances of its own: run it as a [services.<name>] with process = \"" + name + "\"")}
		}
		d, err := parseProcess(name, t)
		if err != nil {
			return out, err
		}
		out.Definitions = append(out.Definitions, AppliedDefinition{Definition: d, Nodes: nodes})
	}
	return out, nil
}

func parseService(name string, val any) (api.ServiceSpec, error) {
	s := api.ServiceSpec{Name: name}
	prefix := "services." + name
	if err := node.ValidName(name); err != nil {
		return s, &KeyError{Key: prefix, Err: fmt.Errorf("service name %q must be 1 to 64 characters of A-Z a-z 0-9 _ -", name)}
	}
	t, ok := val.(map[string]any)
	if !ok {
		return s, &KeyError{Key: prefix, Err: fmt.Errorf("must be a table, got %s", tomlType(val))}
	}
	for _, k := range sortedKeys(t) {
		if !serviceKeys[k] {
			return s, &KeyError{Key: prefix + "." + k, Err: ErrUnknownKey}
		}
	}
	p := &processTable{prefix: prefix + ".", t: t}
	if s.Process = p.str("process"); s.Process == "" && p.err == nil {
		return s, &KeyError{Key: prefix + ".process", Err: ErrRequired}
	}
	if p.err == nil {
		if err := node.ValidName(s.Process); err != nil {
			p.fail("process", err)
		}
	}
	if _, set := t["instances"]; !set {
		return s, &KeyError{Key: prefix + ".instances", Err: ErrRequired}
	}
	if s.Instances = p.integer("instances"); p.err == nil && (s.Instances < 0 || s.Instances > MaxServiceInstances) {
		p.fail("instances", fmt.Errorf("%d is out of range (expected 0 to %d)", s.Instances, MaxServiceInstances))
	}
	if _, set := t["max_per_node"]; set {
		if s.MaxPerNode = p.integer("max_per_node"); p.err == nil && s.MaxPerNode < 1 {
			p.fail("max_per_node", fmt.Errorf("%d is out of range (expected 1 or more; leave it out for no limit)", s.MaxPerNode))
		}
	}
	if p.err != nil {
		return s, p.err
	}
	labels, err := labelTable(prefix+".labels", t["labels"])
	if err != nil {
		return s, err
	}
	s.Labels = labels
	if m, set := t["metadata"]; set {
		if _, ok := m.(map[string]any); !ok {
			return s, &KeyError{Key: prefix + ".metadata", Err: fmt.Errorf("must be a table, got %s", tomlType(m))}
		}
		raw, err := json.Marshal(m)
		if err != nil {
			return s, &KeyError{Key: prefix + ".metadata", Err: err}
		}
		if err := node.ValidMetadata(raw); err != nil {
			return s, &KeyError{Key: prefix + ".metadata", Err: err}
		}
		s.Metadata = raw
	}
	return s, nil
}
