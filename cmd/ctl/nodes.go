package main

import (
	"time"

	"github.com/corral-run/corral/api"
	"github.com/spf13/cobra"
)

func (a *app) nodesCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "nodes",
		Short: "List the nodes of the cluster, alive and gone",
		Long: `Nodes lists every node: those that answer, with what they say of
themselves, and those that are gone (STATE gone: they missed three
heartbeats and do not answer), with their last heartbeat, and those that
are isolated (STATE isolated: a node that sees fewer than half of the
nodes it knows, cut off by a partition; it keeps its children running and
declares no node lost). Gone nodes are
known from the node registry, which needs JetStream; without it only the
nodes that answer are listed.

CPU% and MEM are the node's host (MEM: used/total). DURABLE says whether a
child's ack of an event waits until JetStream stored it; DROPPED counts the
messages the node lost on their way to NATS since it started (the target is
zero).`,
		Args: argNames(),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctl, err := a.control()
			if err != nil {
				return err
			}
			nodes, err := ctl.Nodes(cmd.Context())
			if err != nil {
				return err
			}
			if nodes == nil {
				nodes = []api.NodeInfo{}
			}
			w := cmd.OutOrStdout()
			if a.json {
				return printJSON(w, nodes)
			}
			return printNodes(w, nodes, time.Now())
		},
	}
}
