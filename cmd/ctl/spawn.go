package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/corral-run/corral/bus"
)

func (a *app) spawnCmd() *cobra.Command {
	var (
		nodeID, meta, cwd string
		env               []string
	)
	cmd := &cobra.Command{
		Use:   "spawn NAME",
		Short: "Start a process of a definition, on any node that defines it or on --node",
		Example: `  corralctl spawn encoder --meta '{"input":"a.mp4"}' --env LOG_LEVEL=debug
  corralctl spawn encoder --node host-2`,
		Args: argNames("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := bus.SpawnRequest{Cwd: cwd}
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
			mp, err := ctl.Spawn(cmd.Context(), nodeID, args[0], req)
			if err != nil {
				return err
			}
			if a.json {
				return printJSON(cmd.OutOrStdout(), mp)
			}
			return printProcesses(cmd.OutOrStdout(), []bus.ManagedProcess{mp}, time.Now())
		},
	}
	f := cmd.Flags()
	f.StringVar(&nodeID, "node", "", "spawn on this node (default: any node that defines NAME)")
	f.StringVar(&meta, "meta", "", "metadata for the process, a JSON object")
	f.StringArrayVar(&env, "env", nil, "environment variable KEY=VALUE (repeatable)")
	f.StringVar(&cwd, "cwd", "", "working directory (default: the definition's)")
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
