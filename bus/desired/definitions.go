package desired

import (
	"encoding/json"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus/control"
	"github.com/corral-run/corral/node"
)

// followDefinitions loads the applied definitions meant for this node
// (their selector matches its labels) and drops those deleted or no
// longer meant for it, for as long as the Manager runs.
func (m *Manager) followDefinitions(kv jetstream.KeyValue) {
	m.watch(kv, definitionPrefix+">", func(e jetstream.KeyValueEntry) {
		name := strings.TrimPrefix(e.Key(), definitionPrefix)
		if m.applyEntry(name, e) {
			m.cfg.Changed()
		}
	})
}

// applyEntry applies one change of definitions.<name> and reports
// whether the node's definitions changed.
func (m *Manager) applyEntry(name string, e jetstream.KeyValueEntry) bool {
	if e.Operation() != jetstream.KeyValuePut {
		if m.cfg.Definer.Unapply(name) {
			m.log.Info("applied definition deleted", "name", name)
			return true
		}
		return false
	}
	var ad api.AppliedDefinition
	if err := json.Unmarshal(e.Value(), &ad); err != nil || ad.Definition.Name != name {
		m.log.Error("ignoring an unreadable applied definition", "key", e.Key(), "err", err)
		return false
	}
	if !control.HasLabels(m.cfg.Labels, ad.Nodes) {
		if m.cfg.Definer.Unapply(name) {
			m.log.Info("applied definition no longer selects this node", "name", name, "nodes", control.LabelSelector(ad.Nodes))
			return true
		}
		return false
	}
	d, err := node.DefinitionFromInfo(ad.Definition)
	if err == nil {
		var shadowed bool
		if shadowed, err = m.cfg.Definer.Apply(d); err == nil {
			if shadowed {
				m.log.Warn("applied definition is overridden by this node's configuration, which defines the name too", "name", name)
			} else {
				m.log.Info("applied definition loaded", "name", name)
			}
			return true
		}
	}
	m.log.Error("cannot load an applied definition", "name", name, "err", err)
	if m.cfg.Definer.Unapply(name) {
		return true
	}
	return false
}
