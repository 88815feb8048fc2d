package main

import (
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/corral-run/corral/bus"
)

func (a *app) nodesCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "nodes",
		Short: "List the nodes that answer",
		Long: `Nodes lists the nodes that answer, with their processes and definitions.
DURABLE says whether a child's ack of an event waits until JetStream stored
it; DROPPED counts the messages the node lost on their way to NATS since it
started (the target is zero).`,
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
				nodes = []bus.NodeInfo{}
			}
			w := cmd.OutOrStdout()
			if a.json {
				return printJSON(w, nodes)
			}
			now := time.Now()
			t := newTable(w, "NODE", "VERSION", "PROCESSES", "RUNNING", "UPTIME", "DEFINITIONS", "DURABLE", "DROPPED")
			for _, n := range nodes {
				durable := "no"
				if n.Durable {
					durable = "yes"
				}
				t.row(n.ID, n.Version, strconv.Itoa(n.Processes), strconv.Itoa(n.Running),
					humanDuration(now.Sub(n.StartedAt)), joinOr(n.Definitions, "-"), durable, strconv.FormatUint(n.Dropped, 10))
			}
			return t.flush()
		},
	}
}
