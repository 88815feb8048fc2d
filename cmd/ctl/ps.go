package main

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/corral-run/corral/api"
	"github.com/spf13/cobra"
)

func (a *app) psCmd() *cobra.Command {
	var req api.ListRequest
	var nodeID, status, service string
	cmd := &cobra.Command{
		Use:   "ps",
		Short: "List the processes of every node",
		Long: `Ps asks every node for its processes and prints them as soon as every
known node answered. A node that did not answer within --timeout is named
on stderr; so is a node that is gone (it missed three heartbeats), whose
last known processes are listed with STATUS unknown.`,
		Example: `  corralctl ps --node a --name encoder
  corralctl ps --status crashed
  corralctl ps --service encoders`,
		Args: argNames(),
		RunE: func(cmd *cobra.Command, args []string) error {
			var want api.Status
			if status != "" {
				want = api.Status(status)
				if !slices.Contains(statuses, want) {
					return usage(cmd, "--status %q is not one of %s", status, joinStatuses())
				}
				if want.Finished() {
					req.All = true // a finished status asks for the finished
				}
			}
			ctl, err := a.control()
			if err != nil {
				return err
			}
			res, err := ctl.List(cmd.Context(), req)
			if err != nil {
				return err
			}
			kept := res.Processes[:0]
			for _, p := range res.Processes {
				if (nodeID == "" || p.Node == nodeID) && (want == "" || p.Status == want) && (service == "" || p.Service == service) {
					kept = append(kept, p)
				}
			}
			res.Processes = kept
			for _, n := range res.Missing {
				if slices.Contains(res.Gone, n) {
					fmt.Fprintf(cmd.ErrOrStderr(), "corralctl: node %q is gone: its processes are listed as unknown\n", n)
				} else {
					fmt.Fprintf(cmd.ErrOrStderr(), "corralctl: node %q did not answer within %v: its processes are not listed\n", n, a.timeout)
				}
			}
			if a.json {
				return printJSON(cmd.OutOrStdout(), res)
			}
			return printProcesses(cmd.OutOrStdout(), res.Processes, time.Now())
		},
	}
	cmd.Flags().StringVar(&req.Name, "name", "", "only processes of this definition")
	cmd.Flags().BoolVar(&req.All, "all", false, "include processes that have ended")
	cmd.Flags().StringVar(&nodeID, "node", "", "only processes of this node")
	_ = cmd.RegisterFlagCompletionFunc("node", a.completeNodes)
	cmd.Flags().StringVar(&service, "service", "", "only instances of this service")
	cmd.Flags().StringVar(&status, "status", "", "only processes in this status: "+joinStatuses())
	return cmd
}

// statuses are what --status takes.
var statuses = []api.Status{api.StatusRunning, api.StatusStopping, api.StatusStopped, api.StatusCrashed, api.StatusUnknown}

func joinStatuses() string {
	out := make([]string, len(statuses))
	for i, s := range statuses {
		out[i] = string(s)
	}
	return strings.Join(out, ", ")
}
