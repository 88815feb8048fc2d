package main

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// schemas.json is bus/catalog.All() as JSON: corralctl prints it rather
// than link the schema generator (reflection, a YAML and a Go parser),
// which every command would pay for at start. TestSchemasAreTheCatalog
// fails when it differs from the catalog; `go test ./cmd/ctl -run
// TestSchemasAreTheCatalog -update` writes it again.
//
//go:embed schemas.json
var schemasJSON []byte

// namedSchema is one entry of schemas.json (catalog.Named).
type namedSchema struct {
	Name   string          `json:"name"`
	Schema json.RawMessage `json:"schema"`
}

func schemas() ([]namedSchema, error) {
	var all []namedSchema
	if err := json.Unmarshal(schemasJSON, &all); err != nil {
		return nil, fmt.Errorf("cannot read the schemas built in: %w", err)
	}
	return all, nil
}

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
			all, err := schemas()
			if err != nil {
				return err
			}
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
