package main

import (
	"encoding/json"
	"fmt"

	"github.com/corral-run/corral/api"
	"github.com/spf13/cobra"
)

func (a *app) sendCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "send ID JSON",
		Short:   "Send one JSON value to a process over its connection",
		Example: `  corralctl send proc_1f3k9x0c2m4n5b6v '{"type":"pause"}'`,
		Args:    argNames("ID", "JSON"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, msg := args[0], json.RawMessage(args[1])
			if !json.Valid(msg) {
				return usage(cmd, "the message is not valid JSON: %s", args[1])
			}
			ctl, err := a.control()
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
