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
		Use:   "stop {PROCESS | --name NAME | --all}",
		Short: "Stop a process, every process of a definition, or every running process",
		Long: `Stop sends the signal (default: the definition's stop signal, SIGTERM unless
set) to the process group, waits the definition's stop timeout, then kills
the group, and prints the processes once they have exited. ` + processRefHelp + `
--name stops every running process of a definition, on every node.`,
		Example: `  corralctl stop proc_1f3k9x0c2m4n5b6v --signal SIGINT
  corralctl stop proc_1f3k
  corralctl stop encoder/0
  corralctl stop --name encoder`,
		Args:              argNames("?PROCESS"),
		ValidArgsFunction: a.completeProcesses,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case (all || name != "") && len(args) > 0:
				return usage(cmd, "give a process, or --name, or --all, not more than one")
			case !all && name == "" && len(args) == 0:
				return usage(cmd, "missing PROCESS (or --name NAME, or --all to stop every running process)")
			}
			all = all || name != ""
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
				id, err := ctl.Resolve(ctx, args[0])
				if err != nil {
					return err
				}
				if mp, err = ctl.Stop(ctx, id, signal); err != nil {
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
	f.StringVar(&name, "name", "", "stop every running process of this definition")
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
