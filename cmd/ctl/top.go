package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus/control"
)

// topSnapshot is what top --json prints: the nodes, and the processes by
// CPU, the busiest first.
type topSnapshot struct {
	Nodes     []api.NodeInfo       `json:"nodes"`
	Processes []api.ManagedProcess `json:"processes"`
}

func (a *app) topCmd() *cobra.Command {
	var interval time.Duration
	var logLines int
	cmd := &cobra.Command{
		Use:   "top",
		Short: "Watch the cluster's processes live, by CPU, in the terminal",
		Long: `Top shows every process of the cluster, the busiest first (CPU and memory
as the nodes last sampled them), refreshed every --interval, in the
terminal (it works over ssh). Keys: up and down (or j and k) select a
process; s stops it and r restarts it (after a y); l follows its logs (q or
Esc goes back); q quits.

With --json it prints one snapshot, the nodes and the processes by CPU,
and exits: for scripts.`,
		Example: `  corralctl top
  corralctl top --interval 5s
  corralctl top --json | jq '.processes[:5]'`,
		Args: argNames(),
		RunE: func(cmd *cobra.Command, args []string) error {
			if interval < 100*time.Millisecond {
				return usage(cmd, "--interval must be at least 100ms, got %v", interval)
			}
			ctl, err := a.control()
			if err != nil {
				return err
			}
			if a.json {
				nodes, procs, err := topLook(cmd.Context(), ctl)
				if err != nil {
					return err
				}
				var v topView
				v.update(nodes, procs, time.Now())
				return printJSON(cmd.OutOrStdout(), topSnapshot{Nodes: nodes, Processes: v.procs})
			}
			in, out := os.Stdin, os.Stdout
			if f, ok := cmd.OutOrStdout().(*os.File); ok {
				out = f
			}
			if !term.IsTerminal(int(in.Fd())) || !term.IsTerminal(int(out.Fd())) {
				return errors.New("top needs a terminal (for scripts: corralctl top --json)")
			}
			return runTop(cmd.Context(), ctl, in, out, interval, logLines)
		},
	}
	cmd.Flags().DurationVar(&interval, "interval", time.Second, "how often to look again")
	cmd.Flags().IntVar(&logLines, "lines", 200, "how many lines of a process's logs to show")
	return cmd
}

// topLook asks the cluster for its nodes and processes.
func topLook(ctx context.Context, ctl *control.Control) ([]api.NodeInfo, []api.ManagedProcess, error) {
	res, err := ctl.List(ctx, api.ListRequest{})
	if err != nil {
		return nil, nil, err
	}
	nodes, err := ctl.Nodes(ctx)
	if err != nil {
		return nil, nil, err
	}
	return nodes, res.Processes, nil
}

// runTop puts the terminal in raw mode on the alternate screen and shows
// the view until q or ctx ends; the terminal is as it was afterwards.
func runTop(ctx context.Context, ctl *control.Control, in, out *os.File, interval time.Duration, logLines int) error {
	old, err := term.MakeRaw(int(in.Fd()))
	if err != nil {
		return fmt.Errorf("cannot put the terminal in raw mode: %w", err)
	}
	defer term.Restore(int(in.Fd()), old)
	_, _ = io.WriteString(out, "\x1b[?1049h\x1b[?25l") // the alternate screen, no cursor
	defer io.WriteString(out, "\x1b[?25h\x1b[?1049l")

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	keys := make(chan int, 16)
	go readKeys(ctx, in, keys) // ends with the process: a read on stdin cannot be cancelled

	type look struct {
		nodes []api.NodeInfo
		procs []api.ManagedProcess
		logs  string
		err   error
	}
	looks := make(chan look, 1)
	done := make(chan string, 1) // what an action came to
	var v topView
	refresh := func() {
		logsOf := v.logsOf
		go func() {
			lctx, cancel := context.WithTimeout(ctx, max(interval, 2*time.Second))
			defer cancel()
			var l look
			l.nodes, l.procs, l.err = topLook(lctx, ctl)
			if l.err == nil && logsOf != "" {
				var r api.LogsReply
				r, l.err = ctl.Logs(lctx, logsOf, logLines)
				l.logs = r.Log
			}
			select {
			case looks <- l:
			case <-ctx.Done():
			}
		}()
	}
	draw := func() {
		w, h, err := term.GetSize(int(out.Fd()))
		if err != nil {
			w, h = 80, 24
		}
		v.draw(out, w, h)
	}
	pending := true
	refresh()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case l := <-looks:
			pending = false
			if l.err != nil {
				v.message = l.err.Error()
			} else {
				v.update(l.nodes, l.procs, time.Now())
				v.logs = l.logs
			}
			draw()
		case msg := <-done:
			v.message = msg
			draw()
			if !pending {
				pending = true
				refresh()
			}
		case <-tick.C:
			if !pending {
				pending = true
				refresh()
			}
		case k := <-keys:
			wasLogs := v.logsOf
			quit, act := v.key(k)
			if quit {
				return nil
			}
			if act != nil {
				go func() {
					actx, cancel := context.WithTimeout(ctx, 40*time.Second)
					defer cancel()
					msg := act.verb + " " + act.id + ": done"
					var err error
					if act.verb == "stop" {
						_, err = ctl.Stop(actx, act.id, "")
					} else {
						var mp api.ManagedProcess
						mp, err = ctl.Restart(actx, act.id)
						msg = "restarted " + act.id + " as " + mp.ID
					}
					if err != nil {
						msg = err.Error()
					}
					select {
					case done <- msg:
					case <-ctx.Done():
					}
				}()
			}
			if v.logsOf != wasLogs && !pending {
				pending = true
				refresh()
			}
			draw()
		}
	}
}

// readKeys sends the keys read from in until it fails.
func readKeys(ctx context.Context, in io.Reader, keys chan<- int) {
	buf := make([]byte, 64)
	for {
		n, err := in.Read(buf)
		if err != nil {
			return
		}
		for _, k := range parseKeys(buf[:n]) {
			select {
			case keys <- k:
			case <-ctx.Done():
				return
			}
		}
	}
}
