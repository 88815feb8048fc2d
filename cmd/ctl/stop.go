package main

import (
	"time"

	"github.com/corral-run/corral/api"
	"github.com/spf13/cobra"
)

func (a *app) stopCmd() *cobra.Command {
	var (
		signal, name string
		all          bool
	)
	cmd := &cobra.Command{
		Use:   "stop {ID | --all [--name NAME]}",
		Short: "Stop a process, or every running process",
		Long: `Stop sends the signal (default: the definition's stop signal, SIGTERM unless
set) to the process group, waits the definition's stop timeout, then kills
the group, and prints the processes once they have exited.`,
		Example: `  corralctl stop proc_1f3k9x0c2m4n5b6v --signal SIGINT
  corralctl stop --all --name encoder`,
		Args: argNames("?ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case all && len(args) > 0:
				return usage(cmd, "give a process ID or --all, not both")
			case !all && len(args) == 0:
				return usage(cmd, "missing ID (or --all to stop every running process)")
			case !all && name != "":
				return usage(cmd, "--name goes with --all")
			}
			ctl, err := a.control()
			if err != nil {
				return err
			}
			ctx, cancel := a.exitWait(cmd.Context())
			defer cancel()
			var ps []api.ManagedProcess
			if all {
				ps, err = ctl.StopAll(ctx, name, signal)
				if ps == nil {
					ps = []api.ManagedProcess{}
				}
			} else {
				var mp api.ManagedProcess
				if mp, err = ctl.Stop(ctx, args[0], signal); err != nil {
					return err
				}
				ps = []api.ManagedProcess{mp}
			}
			if perr := a.printStopped(cmd, ps, all); perr != nil {
				return perr
			}
			return err // StopAll may have stopped some and failed on others
		},
	}
	f := cmd.Flags()
	f.StringVar(&signal, "signal", "", "signal to send, as SIGTERM, TERM or 15 (default: the definition's)")
	f.BoolVar(&all, "all", false, "stop every running process on every node")
	f.StringVar(&name, "name", "", "with --all: only processes of this definition")
	return cmd
}

func (a *app) printStopped(cmd *cobra.Command, ps []api.ManagedProcess, all bool) error {
	w := cmd.OutOrStdout()
	switch {
	case a.json && all:
		return printJSON(w, ps)
	case a.json:
		return printJSON(w, ps[0])
	}
	return printProcesses(w, ps, time.Now())
}
