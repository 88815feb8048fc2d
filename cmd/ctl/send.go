package main

import (
	"encoding/json"
	"fmt"

	"github.com/corral-run/corral/api"
	"github.com/spf13/cobra"
)

func (a *app) sendCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "send PROCESS JSON",
		Short:   "Send one JSON value to a process over its connection",
		Long:    "Send writes one JSON value, as a line, to the process's connection. " + processRefHelp,
		Example: `  corralctl send proc_1f3k9x0c2m4n5b6v '{"type":"pause"}'`,
		Args:    argNames("PROCESS", "JSON"),
		ValidArgsFunction: func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
			if len(args) > 0 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			return a.completeProcesses(cmd, args, toComplete)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			msg := json.RawMessage(args[1])
			if !json.Valid(msg) {
				return usage(cmd, "the message is not valid JSON: %s", args[1])
			}
			ctl, err := a.control()
			if err != nil {
				return err
			}
			id, err := ctl.Resolve(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if err := ctl.Send(cmd.Context(), id, msg); err != nil {
				return err
			}
			if a.json {
				return printJSON(cmd.OutOrStdout(), api.OK{OK: true})
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "sent to %s\n", id)
			return err
		},
	}
}
