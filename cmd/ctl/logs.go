package main

import (
	"io"

	"github.com/corral-run/corral/api"
	"github.com/spf13/cobra"
)

func (a *app) logsCmd() *cobra.Command {
	var lines int
	cmd := &cobra.Command{
		Use:               "logs PROCESS",
		Short:             "Print the last lines of a process's output (stdout and stderr)",
		Long:              "Logs prints the last lines a process wrote on stdout and stderr. " + processRefHelp,
		Args:              argNames("PROCESS"),
		ValidArgsFunction: a.completeProcesses,
		RunE: func(cmd *cobra.Command, args []string) error {
			if lines <= 0 {
				return usage(cmd, "--lines must be positive, got %d", lines)
			}
			ctl, err := a.control()
			if err != nil {
				return err
			}
			id, err := ctl.Resolve(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			text, err := ctl.Logs(cmd.Context(), id, lines)
			if err != nil {
				return err
			}
			if a.json {
				return printJSON(cmd.OutOrStdout(), api.LogsReply{ProcessID: id, Log: text})
			}
			_, err = io.WriteString(cmd.OutOrStdout(), text)
			return err
		},
	}
	cmd.Flags().IntVarP(&lines, "lines", "n", 100, "how many lines")
	return cmd
}
