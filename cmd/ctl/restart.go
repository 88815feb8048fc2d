package main

import (
	"time"

	"github.com/corral-run/corral/api"
	"github.com/spf13/cobra"
)

func (a *app) restartCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "restart PROCESS",
		Short: "Stop a process and start a new one of the same definition and options",
		Long: `Restart stops the process (if it runs) and spawns a new one with the same
metadata, environment and working directory. The new process has a new ID,
which restart prints. ` + processRefHelp,
		Args:              argNames("PROCESS"),
		ValidArgsFunction: a.completeProcesses,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctl, err := a.control()
			if err != nil {
				return err
			}
			ctx, cancel := a.exitWait(cmd.Context())
			defer cancel()
			id, err := ctl.Resolve(ctx, args[0])
			if err != nil {
				return err
			}
			mp, err := ctl.Restart(ctx, id)
			if err != nil {
				return err
			}
			if a.json {
				return printJSON(cmd.OutOrStdout(), mp)
			}
			return printProcesses(cmd.OutOrStdout(), []api.ManagedProcess{mp}, time.Now())
		},
	}
}
