package main

import (
	"encoding/json"
	"strings"

	"github.com/corral-run/corral/bus/catalog"
	"github.com/spf13/cobra"
)

func (a *app) schemaCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "schema [NAME]",
		Short: "Print the JSON Schemas of Corral's messages",
		Long: `Schema prints the JSON Schema of every message Corral publishes, asks or
answers, as one JSON object from name to schema; with NAME, only that schema.
Names are subjects ("process.spawned"), subjects and roles
("corral.node.<node>.spawn request") or wire messages ("wire child->node
message"; "->" may be typed for "→").`,
		Example: `  corralctl schema process.spawned
  corralctl schema 'corral.proc.<id>.get reply'`,
		Args: argNames("?NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			all := catalog.All()
			w := cmd.OutOrStdout()
			if len(args) == 0 {
				out := make(map[string]json.RawMessage, len(all))
				for _, s := range all {
					out[s.Name] = s.Schema
				}
				return printJSON(w, out)
			}
			want := strings.ReplaceAll(args[0], "->", "→")
			names := make([]string, 0, len(all))
			for _, s := range all {
				if s.Name == want {
					return printJSON(w, s.Schema)
				}
				names = append(names, s.Name)
			}
			return usage(cmd, "no schema named %q; the names are:\n  %s", args[0], strings.Join(names, "\n  "))
		},
	}
}
