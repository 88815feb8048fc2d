package main

import (
	"context"
	"sort"
	"time"

	"github.com/spf13/cobra"

	"github.com/corral-run/corral/api"
)

// processRefHelp says how commands name a process.
const processRefHelp = `PROCESS is a process id, any unique prefix of one (proc_1f3k, or 1f3k), or
an instance name (encoder/0).`

// completeTimeout bounds what shell completion asks of the cluster: a
// slow or unreachable cluster completes nothing rather than hang the shell.
const completeTimeout = 500 * time.Millisecond

// completeProcesses offers the ids and instance names of the cluster's
// processes, running ones first.
func (a *app) completeProcesses(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), completeTimeout)
	defer cancel()
	ctl, err := a.control()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	res, err := ctl.List(ctx, api.ListRequest{All: true})
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []string
	for _, p := range res.Processes {
		desc := p.Name + " on " + p.Node + ", " + string(p.Status)
		if p.Instance != "" {
			out = append(out, p.Instance+"\t"+desc)
		}
		out = append(out, p.ID+"\t"+desc)
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// completeDefinitions offers the definition names of every node.
func (a *app) completeDefinitions(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), completeTimeout)
	defer cancel()
	ctl, err := a.control()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	nodes, err := ctl.Nodes(ctx)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	seen := map[string]bool{}
	for _, n := range nodes {
		for _, d := range n.Definitions {
			seen[d] = true
		}
	}
	out := make([]string, 0, len(seen))
	for d := range seen {
		out = append(out, d)
	}
	sort.Strings(out)
	return out, cobra.ShellCompDirectiveNoFileComp
}

// completeNodes offers node ids, for --node.
func (a *app) completeNodes(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	ctx, cancel := context.WithTimeout(cmd.Context(), completeTimeout)
	defer cancel()
	ctl, err := a.control()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	nodes, err := ctl.Nodes(ctx)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	out := make([]string, 0, len(nodes))
	for _, n := range nodes {
		out = append(out, n.ID)
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}
