package control

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus"
)

// The cluster's desired state (package bus/desired): any node answers.

// Desired returns the services and applied definitions.
func (c *Control) Desired(ctx context.Context) (api.DesiredState, error) {
	var out api.DesiredState
	return out, c.desired(ctx, bus.DesiredGet, nil, &out, "cannot read the desired state")
}

// Apply stores the services and definitions of a TOML document.
func (c *Control) Apply(ctx context.Context, doc string) (api.ApplyReply, error) {
	var out api.ApplyReply
	return out, c.desired(ctx, bus.DesiredApply, api.ApplyRequest{TOML: doc}, &out, "cannot apply")
}

// Scale sets a service's instance count.
func (c *Control) Scale(ctx context.Context, service string, instances int) (api.ServiceSpec, error) {
	var out api.ServiceSpec
	return out, c.desired(ctx, bus.DesiredScale, api.ScaleRequest{Service: service, Instances: instances}, &out, "cannot scale %q", service)
}

// Delete removes a service ("service") or an applied definition
// ("definition").
func (c *Control) Delete(ctx context.Context, kind, name string) error {
	return c.desired(ctx, bus.DesiredDelete, api.DeleteRequest{Kind: kind, Name: name}, nil, "cannot delete %s %q", kind, name)
}

func (c *Control) desired(ctx context.Context, verb string, req, reply any, format string, args ...any) error {
	err := c.request(ctx, bus.DesiredSubject(verb), req, reply)
	if errors.Is(err, nats.ErrNoResponders) {
		return api.Errorf(ErrUnreachable, format+": no node answers (is one running, with JetStream?)", args...)
	}
	if err != nil {
		return explain(err, format, args...)
	}
	return nil
}
