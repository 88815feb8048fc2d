package main

import (
	"github.com/spf13/cobra"
)

func (a *app) getCmd() *cobra.Command {
	return &cobra.Command{
		Use:               "get PROCESS",
		Short:             "Show every field of one process",
		Long:              "Get shows every field of one process. " + processRefHelp,
		Args:              argNames("PROCESS"),
		ValidArgsFunction: a.completeProcesses,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctl, err := a.control()
			if err != nil {
				return err
			}
			id, err := ctl.Resolve(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			mp, err := ctl.Get(cmd.Context(), id)
			if err != nil {
				return err
			}
			if a.json {
				return printJSON(cmd.OutOrStdout(), mp)
			}
			return printFields(cmd.OutOrStdout(), mp)
		},
	}
}
