package desired

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/config"
	"github.com/corral-run/corral/node"
)

// The corral.desired.* requests, as the control service hands them on.
// Their errors are sentences of an api kind.

// Get returns the desired state, definitions redacted.
func (m *Manager) Get(ctx context.Context) (api.DesiredState, error) {
	kv, err := m.bucket()
	if err != nil {
		return api.DesiredState{}, fmt.Errorf("cannot read the desired state: %w", err)
	}
	st, err := read(ctx, kv)
	if err != nil {
		return st, api.Errorf(api.ErrInternal, "%v", err)
	}
	for i := range st.Definitions {
		st.Definitions[i].Definition = st.Definitions[i].Definition.Redacted()
	}
	m.mu.Lock()
	leases := m.leases
	m.mu.Unlock()
	st.Reconciler = holder(ctx, leases)
	return st, nil
}

// Apply stores the services and definitions of a TOML apply document,
// each added or replacing the one of its name. The whole document is
// checked first: one that is wrong anywhere changes nothing.
func (m *Manager) Apply(ctx context.Context, doc []byte) (api.ApplyReply, error) {
	var reply api.ApplyReply
	kv, err := m.bucket()
	if err != nil {
		return reply, fmt.Errorf("cannot apply: %w", err)
	}
	a, err := config.ParseApply(doc)
	if err != nil {
		return reply, api.Errorf(api.ErrInvalid, "cannot apply: %v", err)
	}
	for _, d := range a.Definitions {
		if err := d.Definition.Check(); err != nil {
			return reply, api.Errorf(api.ErrInvalid, "cannot apply: %v", err)
		}
	}
	if err := m.checkRoom(ctx, kv, servicePrefix, len(a.Services), MaxServices, "services"); err != nil {
		return reply, err
	}
	if err := m.checkRoom(ctx, kv, definitionPrefix, len(a.Definitions), MaxDefinitions, "definitions"); err != nil {
		return reply, err
	}
	record := func(what, outcome string) {
		switch outcome {
		case "created":
			reply.Created = append(reply.Created, what)
		case "updated":
			reply.Updated = append(reply.Updated, what)
		default:
			reply.Unchanged = append(reply.Unchanged, what)
		}
	}
	// Definitions first: a service placed at once finds its definition.
	for _, d := range a.Definitions {
		ad := api.AppliedDefinition{Definition: d.Definition.Info(), Nodes: d.Nodes}
		outcome, err := putIfChanged(ctx, kv, definitionPrefix+d.Definition.Name, ad)
		if err != nil {
			return reply, api.Errorf(api.ErrInternal, "cannot apply definition %q: %v", d.Definition.Name, err)
		}
		record("definition/"+d.Definition.Name, outcome)
	}
	for _, s := range a.Services {
		outcome, err := putIfChanged(ctx, kv, servicePrefix+s.Name, s)
		if err != nil {
			return reply, api.Errorf(api.ErrInternal, "cannot apply service %q: %v", s.Name, err)
		}
		record("service/"+s.Name, outcome)
	}
	m.log.Info("desired state applied", "created", reply.Created, "updated", reply.Updated)
	m.changedHere(kv)
	return reply, nil
}

// checkRoom refuses an apply that could take the bucket beyond max keys
// of a kind (counting every name of the document as new).
func (m *Manager) checkRoom(ctx context.Context, kv jetstream.KeyValue, prefix string, adding, limit int, what string) error {
	if adding == 0 {
		return nil
	}
	if adding > limit {
		return api.Errorf(api.ErrInvalid, "cannot apply: %d %s, more than the limit of %d", adding, what, limit)
	}
	n, err := count(ctx, kv, prefix)
	if err != nil && !errors.Is(err, jetstream.ErrNoKeysFound) {
		return api.Errorf(api.ErrInternal, "cannot apply: cannot count the %s: %v", what, err)
	}
	if n+adding > limit {
		return api.Errorf(api.ErrNoCapacity, "cannot apply: the cluster has %d %s and the limit is %d; delete some first", n, what, limit)
	}
	return nil
}

// Scale sets a service's instance count.
func (m *Manager) Scale(ctx context.Context, req api.ScaleRequest) (api.ServiceSpec, error) {
	var s api.ServiceSpec
	kv, err := m.bucket()
	if err != nil {
		return s, fmt.Errorf("cannot scale %q: %w", req.Service, err)
	}
	if err := node.ValidName(req.Service); err != nil {
		return s, api.Errorf(api.ErrInvalid, "cannot scale: service name %q must be 1 to 64 characters of A-Z a-z 0-9 _ -", req.Service)
	}
	if req.Instances < 0 || req.Instances > config.MaxServiceInstances {
		return s, api.Errorf(api.ErrInvalid, "cannot scale %q: %d instances is out of range (0 to %d)", req.Service, req.Instances, config.MaxServiceInstances)
	}
	for attempt := 0; ; attempt++ {
		e, err := retry(ctx, func() (jetstream.KeyValueEntry, error) { return kv.Get(ctx, servicePrefix+req.Service) })
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey):
			return s, api.Errorf(api.ErrNotFound, "cannot scale %q: no such service", req.Service)
		case err != nil:
			return s, api.Errorf(api.ErrInternal, "cannot scale %q: %v", req.Service, err)
		}
		if err := json.Unmarshal(e.Value(), &s); err != nil {
			return s, api.Errorf(api.ErrInternal, "cannot scale %q: its record is unreadable: %v", req.Service, err)
		}
		s.Instances = req.Instances
		data, _ := json.Marshal(s)
		if _, err = retry(ctx, func() (uint64, error) { return kv.Update(ctx, e.Key(), data, e.Revision()) }); err == nil {
			m.log.Info("service scaled", "service", s.Name, "instances", s.Instances)
			m.changedHere(kv)
			return s, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) || attempt == 3 {
			return s, api.Errorf(api.ErrInternal, "cannot scale %q: %v", req.Service, err)
		}
	}
}

// Delete removes a service (the reconciler stops its instances) or an
// applied definition (the nodes drop it).
func (m *Manager) Delete(ctx context.Context, req api.DeleteRequest) error {
	var prefix string
	switch req.Kind {
	case "service":
		prefix = servicePrefix
	case "definition":
		prefix = definitionPrefix
	default:
		return api.Errorf(api.ErrInvalid, "cannot delete: kind %q is not service or definition", req.Kind)
	}
	if err := node.ValidName(req.Name); err != nil {
		return api.Errorf(api.ErrInvalid, "cannot delete %s: name %q must be 1 to 64 characters of A-Z a-z 0-9 _ -", req.Kind, req.Name)
	}
	kv, err := m.bucket()
	if err != nil {
		return fmt.Errorf("cannot delete %s %q: %w", req.Kind, req.Name, err)
	}
	_, err = retry(ctx, func() (jetstream.KeyValueEntry, error) { return kv.Get(ctx, prefix+req.Name) })
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey):
		return api.Errorf(api.ErrNotFound, "cannot delete %s %q: there is none", req.Kind, req.Name)
	case err != nil:
		return api.Errorf(api.ErrInternal, "cannot delete %s %q: %v", req.Kind, req.Name, err)
	}
	if _, err := retry(ctx, func() (struct{}, error) { return struct{}{}, kv.Delete(ctx, prefix+req.Name) }); err != nil {
		return api.Errorf(api.ErrInternal, "cannot delete %s %q: %v", req.Kind, req.Name, err)
	}
	m.log.Info("desired state deleted", "kind", req.Kind, "name", req.Name)
	m.changedHere(kv)
	return nil
}

// changedHere takes a change this node wrote into its view of the services
// at once, without waiting for its watch (one that lags, as after nodes
// came and went, would have its reconciler act on the old state: once, in
// the chaos test, it placed the instances of a service deleted a moment
// before), and has a pass run.
func (m *Manager) changedHere(kv jetstream.KeyValue) {
	m.rereadServices(kv)
	m.Poke()
}
