package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

func (a *app) reloadCmd() *cobra.Command {
	var nodeID string
	cmd := &cobra.Command{
		Use:   "reload",
		Short: "Have nodes read their configuration files again",
		Long: `Reload has every node (or the one --node names) read its configuration file
again, as SIGHUP does: added, changed and removed definitions take effect for
new spawns (running processes keep the definition they started with until
they restart), and each definition's instances are brought to its count.
Other changed keys are listed as needing a restart. A node whose new file is
invalid changes nothing and says why; the others reload.`,
		Args: argNames(),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctl, err := a.control()
			if err != nil {
				return err
			}
			ctx, cancel := a.exitWait(cmd.Context())
			defer cancel()
			results, err := ctl.Reload(ctx, nodeID)
			if err != nil {
				return err
			}
			if a.json {
				return printJSON(cmd.OutOrStdout(), results)
			}
			var errs []error
			t := newTable(cmd.OutOrStdout(), "NODE", "ADDED", "CHANGED", "REMOVED", "STARTED", "NEEDS RESTART")
			for _, r := range results {
				if r.Err != nil {
					errs = append(errs, r.Err)
					t.row(r.Node, "-", "-", "-", "-", "-")
					continue
				}
				t.row(r.Node, list(r.Added), list(r.Changed), list(r.Removed), list(r.Started), list(r.NeedsRestart))
			}
			if err := t.flush(); err != nil {
				return err
			}
			if len(errs) > 0 {
				return fmt.Errorf("%d of %d nodes did not reload: %w", len(errs), len(results), errors.Join(errs...))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&nodeID, "node", "", "reload only this node")
	_ = cmd.RegisterFlagCompletionFunc("node", a.completeNodes)
	return cmd
}

// list is a comma-separated list, or "-" for none.
func list(s []string) string {
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, ",")
}
