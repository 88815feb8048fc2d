package control

import (
	"context"
	"errors"
	"sort"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus"
)

// ReloadResult is one node's answer to a reload: what changed, or why
// nothing did.
type ReloadResult struct {
	api.ReloadReply
	Err   error  `json:"-"`
	Error string `json:"error,omitempty"` // Err's text
}

// Reload has nodes read their configuration files again: the node
// nodeID, or every node that is not gone when nodeID is empty, all at
// once. Results are sorted by node; a node that refuses its new file
// has its Err set (and the others still reload). The error is for a
// cluster that could not be asked at all.
func (c *Control) Reload(ctx context.Context, nodeID string) ([]ReloadResult, error) {
	ids := []string{nodeID}
	if nodeID == "" {
		nodes, err := c.Nodes(ctx)
		if err != nil {
			return nil, err
		}
		ids = ids[:0]
		for _, n := range nodes {
			if !n.Gone {
				ids = append(ids, n.ID)
			}
		}
	}
	out := make([]ReloadResult, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() {
			out[i].Node = id
			err := c.request(ctx, bus.NodeSubject(id, bus.VerbReload), nil, &out[i].ReloadReply)
			switch {
			case errors.Is(err, nats.ErrNoResponders):
				err = api.Errorf(ErrUnreachable, "cannot reload node %q: it is unreachable", id)
			case err != nil:
				err = explain(err, "cannot reload node %q", id)
			}
			out[i].Err, out[i].Node = err, id
			if err != nil {
				out[i].Error = err.Error()
			}
		})
	}
	wg.Wait()
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	if nodeID != "" && out[0].Err != nil {
		return out, out[0].Err
	}
	return out, nil
}
