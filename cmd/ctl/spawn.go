package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus/control"
)

func (a *app) spawnCmd() *cobra.Command {
	var (
		nodeID, meta, cwd string
		env, labels       []string
	)
	cmd := &cobra.Command{
		Use:   "spawn NAME",
		Short: "Start a process of a definition, on any node that defines it, on --node, or by --label",
		Long: `Spawn starts a process of the definition NAME. Without --node or --label any
node that defines NAME takes it. With --node, that node. With --label (one
or more key=value), the nodes whose labels match them all and that define
NAME: the one with the fewest running processes, ties broken at random.
A name no node defines, or labels no node matches, fail at once.`,
		Example: `  corralctl spawn encoder --meta '{"input":"a.mp4"}' --env LOG_LEVEL=debug
  corralctl spawn encoder --node host-2
  corralctl spawn encoder --label gpu=true --label zone=eu-1`,
		Args:              argNames("NAME"),
		ValidArgsFunction: a.completeDefinitions,
		RunE: func(cmd *cobra.Command, args []string) error {
			at := control.Placement{Node: nodeID}
			if nodeID != "" && len(labels) > 0 {
				return usage(cmd, "give --node or --label, not both")
			}
			for _, kv := range labels {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || !api.ValidToken(k) || !api.ValidToken(v) {
					return usage(cmd, "--label %q must be KEY=VALUE, each of A-Z a-z 0-9 _ - (at most 64)", kv)
				}
				if at.Labels == nil {
					at.Labels = map[string]string{}
				}
				at.Labels[k] = v
			}
			req := api.SpawnRequest{Cwd: cwd}
			if meta != "" {
				if err := jsonObject(meta); err != nil {
					return usage(cmd, "--meta %v", err)
				}
				req.Metadata = json.RawMessage(meta)
			}
			for _, kv := range env {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return usage(cmd, "--env %q must be KEY=VALUE", kv)
				}
				if req.Env == nil {
					req.Env = map[string]string{}
				}
				req.Env[k] = v
			}
			ctl, err := a.control()
			if err != nil {
				return err
			}
			mp, err := ctl.SpawnAt(cmd.Context(), args[0], at, req)
			if err != nil {
				return err
			}
			if a.json {
				return printJSON(cmd.OutOrStdout(), mp)
			}
			return printProcesses(cmd.OutOrStdout(), []api.ManagedProcess{mp}, time.Now())
		},
	}
	f := cmd.Flags()
	f.StringVar(&nodeID, "node", "", "spawn on this node (default: any node that defines NAME)")
	f.StringArrayVar(&labels, "label", nil, "spawn on a node with this label KEY=VALUE (repeatable: all must match)")
	f.StringVar(&meta, "meta", "", "metadata for the process, a JSON object")
	f.StringArrayVar(&env, "env", nil, "environment variable KEY=VALUE (repeatable)")
	f.StringVar(&cwd, "cwd", "", "working directory (default: the definition's)")
	_ = cmd.RegisterFlagCompletionFunc("node", a.completeNodes)
	return cmd
}

// jsonObject reports why s is not a JSON object, or nil.
func jsonObject(s string) error {
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return fmt.Errorf("is not valid JSON: %v", err)
	}
	if _, ok := v.(map[string]any); !ok {
		return fmt.Errorf("must be a JSON object, got %s", jsonKind(v))
	}
	return nil
}

func jsonKind(v any) string {
	switch v.(type) {
	case []any:
		return "an array"
	case string:
		return "a string"
	case float64:
		return "a number"
	case bool:
		return "a boolean"
	}
	return "null"
}
