package daemon

import (
	"reflect"
	"sort"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/config"
	"github.com/corral-run/corral/node"
)

// Reload reads the configuration file again and applies its [processes]
// tables: added and changed definitions take effect for new spawns,
// removed ones are gone (their running processes keep them until they
// end), and every definition's instances are brought to its count. Other
// changed keys are listed as needing a restart. A file that does not load,
// or a definition the node would refuse, changes nothing: the error says
// why.
func (d *Daemon) Reload() (api.ReloadReply, error) {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	reply := api.ReloadReply{Node: d.cfg.Node.ID}
	cfg, err := config.Load(d.cfg.Path)
	if err != nil {
		return reply, api.Errorf(api.ErrInvalid, "cannot reload node %s: %v; nothing changed", d.cfg.Node.ID, err)
	}
	cfg.Adjust = d.cfg.Adjust
	if cfg.Adjust != nil {
		cfg.Adjust(cfg)
	}
	old := byName(d.cfg.Processes)
	next := byName(cfg.Processes)
	for name, def := range next {
		if err := d.sup.CheckDefinition(def); err != nil {
			return reply, api.Errorf(api.ErrInvalid, "cannot reload node %s: %v; nothing changed", d.cfg.Node.ID, err)
		}
		switch prev, ok := old[name]; {
		case !ok:
			reply.Added = append(reply.Added, name)
		case !reflect.DeepEqual(prev, def):
			reply.Changed = append(reply.Changed, name)
		}
	}
	for name := range old {
		if _, ok := next[name]; !ok {
			reply.Removed = append(reply.Removed, name)
		}
	}
	sort.Strings(reply.Added)
	sort.Strings(reply.Changed)
	sort.Strings(reply.Removed)
	for _, name := range append(append([]string{}, reply.Added...), reply.Changed...) {
		if err := d.sup.Define(next[name]); err != nil { // checked above: only a closing node fails here
			return reply, err
		}
		d.rep.Define(name)
	}
	for _, name := range reply.Removed {
		if err := d.sup.Undefine(name); err != nil {
			return reply, err
		}
	}
	reply.NeedsRestart = config.NeedsRestart(d.cfg, cfg)
	d.cfg.Processes = cfg.Processes
	d.svc.DefinitionsChanged()
	started, err := d.sup.EnsureInstances()
	for _, mp := range started {
		reply.Started = append(reply.Started, mp.Instance)
	}
	d.log.Info("configuration reloaded", "added", reply.Added, "changed", reply.Changed, "removed", reply.Removed,
		"started", len(reply.Started), "needsRestart", reply.NeedsRestart)
	if err != nil {
		return reply, api.Errorf(api.ErrInternal, "node %s reloaded its definitions, but %v", d.cfg.Node.ID, err)
	}
	return reply, nil
}

func byName(defs []node.Definition) map[string]node.Definition {
	out := make(map[string]node.Definition, len(defs))
	for _, d := range defs {
		out[d.Name] = d
	}
	return out
}
