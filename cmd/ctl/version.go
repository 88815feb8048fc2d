package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/corral-run/corral/internal/version"
)

func (a *app) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print corralctl's version, and the server's and nodes' when it can reach them",
		Long: `Version prints corralctl's version, the commit it was built from and its Go,
then, if it can connect within --timeout, the version of the NATS server it
reaches and of every node that answers.`,
		Args: argNames(),
		RunE: func(cmd *cobra.Command, args []string) error {
			w := cmd.OutOrStdout()
			v := version.Get()
			type nodeVersion struct {
				Node    string `json:"node"`
				Version string `json:"version"`
			}
			out := struct {
				Corralctl version.Info  `json:"corralctl"`
				Server    string        `json:"server,omitempty"`
				Nodes     []nodeVersion `json:"nodes,omitempty"`
			}{Corralctl: v}
			ctl, err := a.control()
			if err == nil {
				out.Server = a.nc.ConnectedServerVersion()
				if nodes, nerr := ctl.Nodes(cmd.Context()); nerr == nil {
					for _, n := range nodes {
						if !n.Gone {
							out.Nodes = append(out.Nodes, nodeVersion{n.ID, n.Version})
						}
					}
				}
			}
			if a.json {
				return printJSON(w, out)
			}
			fmt.Fprintln(w, v.String("corralctl"))
			if err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "corralctl: not connected: %v\n", err)
				return nil
			}
			fmt.Fprintf(w, "nats-server %s at %s\n", out.Server, a.nc.ConnectedUrlRedacted())
			for _, n := range out.Nodes {
				fmt.Fprintf(w, "node %s: corrald %s\n", n.Node, n.Version)
			}
			return nil
		},
	}
}
