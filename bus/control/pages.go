package control

import (
	"context"
	"fmt"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus"
)

// listPages lists req on one node (corral.node.<node>.list), page after
// page while its replies say more follow (api.ListReply.Next): a reply
// holds at most the server's max_payload. It returns what it listed
// before an error too.
func (c *Control) listPages(ctx context.Context, node string, req api.ListRequest) ([]api.ManagedProcess, error) {
	var out []api.ManagedProcess
	for {
		var lr api.ListReply
		if err := c.request(ctx, bus.NodeSubject(node, bus.VerbList), req, &lr); err != nil {
			return out, fmt.Errorf("cannot list the processes of node %q: %w", node, err)
		}
		out = append(out, lr.Processes...)
		if lr.Next == "" {
			return out, nil
		}
		if lr.Next <= req.After { // a page must move on, or this would never end
			return out, fmt.Errorf("cannot list the processes of node %q: its reply after %q went back to %q", node, req.After, lr.Next)
		}
		req.After = lr.Next
	}
}
