package main

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/corral-run/corral/bus"
)

func (a *app) psCmd() *cobra.Command {
	var req bus.ListRequest
	cmd := &cobra.Command{
		Use:   "ps",
		Short: "List the processes of every node",
		Args:  argNames(),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctl, err := a.control()
			if err != nil {
				return err
			}
			res, err := ctl.List(cmd.Context(), req)
			if err != nil {
				return err
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
