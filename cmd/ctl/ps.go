package main

import (
	"fmt"
	"slices"
	"time"

	"github.com/corral-run/corral/api"
	"github.com/spf13/cobra"
)

func (a *app) psCmd() *cobra.Command {
	var req api.ListRequest
	cmd := &cobra.Command{
		Use:   "ps",
		Short: "List the processes of every node",
		Long: `Ps asks every node for its processes and prints them as soon as every
known node answered. A node that did not answer within --timeout is named
on stderr; so is a node that is gone (it missed three heartbeats), whose
last known processes are listed with STATUS unknown.`,
		Args: argNames(),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctl, err := a.control()
			if err != nil {
				return err
			}
			res, err := ctl.List(cmd.Context(), req)
			if err != nil {
				return err
			}
			for _, n := range res.Missing {
				if slices.Contains(res.Gone, n) {
					fmt.Fprintf(cmd.ErrOrStderr(), "corralctl: node %q is gone: its processes are listed as unknown\n", n)
				} else {
					fmt.Fprintf(cmd.ErrOrStderr(), "corralctl: node %q did not answer within %v: its processes are not listed\n", n, a.timeout)
				}
			}
			if a.json {
				return printJSON(cmd.OutOrStdout(), res)
			}
			return printProcesses(cmd.OutOrStdout(), res.Processes, time.Now())
		},
	}
	cmd.Flags().StringVar(&req.Name, "name", "", "only processes of this definition")
	cmd.Flags().BoolVar(&req.All, "all", false, "include processes that have ended")
	return cmd
}
