package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus/control"
)

func (a *app) logsCmd() *cobra.Command {
	var lines, tail int
	var since time.Duration
	var follow bool
	cmd := &cobra.Command{
		Use:   "logs PROCESS",
		Short: "Print a process's output (stdout and stderr), or follow it",
		Long: `Logs prints the last lines a process wrote on stdout and stderr. ` + processRefHelp + `

With -f it prints the last lines (10 by default), then the output as the
process writes it, read live from its node wherever it runs, until the
process ends (then logs exits 0) or Ctrl-C. -f NAME, where NAME is a
definition or a service, follows every process of it on every node, each
line prefixed with its process's instance name (encoder/0) or the start of
its id, and takes in the processes of it that start meanwhile, until Ctrl-C.
Output that could not be kept up with is dropped, and a line on stderr says
how much.

--since prints the lines written within that long, as far as the node can
tell: to the second for output its node read, by the log files' times for
older output (a file last written before is left out whole).`,
		Example: `  corralctl logs encoder/0
  corralctl logs -f proc_1x2y
  corralctl logs -f --tail 100 encoder/0
  corralctl logs -f --since 5m encoders`,
		Args:              argNames("PROCESS"),
		ValidArgsFunction: a.completeProcesses,
		RunE: func(cmd *cobra.Command, args []string) error {
			f := cmd.Flags()
			if f.Changed("lines") && f.Changed("tail") {
				return usage(cmd, "--lines and --tail are the same: give one")
			}
			n := lines
			switch {
			case f.Changed("tail"):
				n = tail
			case f.Changed("lines"):
			case f.Changed("since"):
				n = 0 // all of them
			case follow:
				n = 10
			}
			switch {
			case f.Changed("since") && since <= 0:
				return usage(cmd, "--since must be positive, got %v", since)
			case n < 0 || n > maxLines:
				return usage(cmd, "--tail must be 0 to %d, got %d", maxLines, n)
			case n == 0 && !follow && since == 0:
				return usage(cmd, "--lines must be positive, got %d", n)
			}
			ctl, err := a.control()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if follow {
				return a.followLogs(ctx, cmd, ctl, args[0], control.FollowOptions{Tail: n, Since: since})
			}
			id, err := ctl.Resolve(ctx, args[0])
			if err != nil {
				return err
			}
			reply, err := ctl.LogsSince(ctx, id, n, since)
			if err != nil {
				return err
			}
			if a.json {
				return printJSON(cmd.OutOrStdout(), reply)
			}
			if reply.Truncated {
				fmt.Fprintln(cmd.ErrOrStderr(), "corralctl: older lines left out: "+api.TruncatedWhy)
			}
			_, err = io.WriteString(cmd.OutOrStdout(), reply.Log)
			return err
		},
	}
	cmd.Flags().IntVarP(&lines, "lines", "n", 100, "how many lines (with -f: 10)")
	cmd.Flags().IntVar(&tail, "tail", 10, "how many lines to print first (the same as --lines)")
	cmd.Flags().DurationVar(&since, "since", 0, "only the lines written within this long (5m, 1h)")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "then print the output as it is written, until the process ends")
	return cmd
}

// maxLines is the most lines a node reads of a log at once.
const maxLines = 10000

// followLogs is logs -f: of one process, or of every process of a
// definition or service.
func (a *app) followLogs(ctx context.Context, cmd *cobra.Command, ctl *control.Control, ref string, opts control.FollowOptions) error {
	id, sel, err := followTarget(ctx, ctl, ref)
	if err != nil {
		return err
	}
	out := newFollowPrinter(cmd.OutOrStdout(), cmd.ErrOrStderr(), a.json)
	if sel == nil {
		p := api.ManagedProcess{ID: id}
		end, err := ctl.Follow(ctx, id, opts, func(o control.Output) error { return out.print(p, o, false) })
		switch {
		case ctx.Err() != nil: // Ctrl-C
			return nil
		case err != nil:
			return err
		case a.json:
			return out.end(p, &end)
		}
		return nil
	}
	err = ctl.FollowAll(ctx, *sel, opts, func(f control.Followed) error {
		switch {
		case f.Err != nil:
			out.note(f.Process, "cannot follow: "+f.Err.Error())
			return out.end(f.Process, nil)
		case f.End != nil:
			return out.end(f.Process, f.End)
		}
		return out.print(f.Process, f.Output, true)
	})
	return errors.Join(err, out.flush())
}

// followTarget finds what logs -f follows: one process (id), or the
// processes of a definition or service (sel).
func followTarget(ctx context.Context, ctl *control.Control, ref string) (id string, sel *control.Selector, err error) {
	if api.IsID(ref) {
		return ref, nil, nil
	}
	if !strings.Contains(ref, "/") { // not an instance: maybe a name
		var s control.Selector
		if nodes, err := ctl.Nodes(ctx); err == nil {
			for _, n := range nodes {
				if slices.Contains(n.Definitions, ref) {
					s.Name = ref
				}
			}
		}
		if ds, err := ctl.Desired(ctx); err == nil {
			for _, svc := range ds.Services {
				if svc.Name == ref {
					s.Service = ref
				}
			}
		}
		if s != (control.Selector{}) {
			return "", &s, nil
		}
	}
	id, err = ctl.Resolve(ctx, ref)
	if errors.Is(err, control.ErrNotFound) {
		return "", nil, api.Errorf(control.ErrNotFound, "cannot follow %q: no process, definition or service has that name (give an id, a prefix of one, an instance name such as encoder/0, a definition or a service)", ref)
	}
	return id, nil, err
}

// followPrinter prints followed output: as it comes for one process;
// line by line, each prefixed with its process, for several; or as JSON
// lines. What was missed, and notes, go to stderr.
type followPrinter struct {
	w, errw io.Writer
	json    bool
	width   int                     // of the widest prefix so far
	partial map[string]*partialLine // an unfinished last line, by process
	err     error                   // the first write error
}

type partialLine struct {
	p     api.ManagedProcess
	lines control.Lines
}

// followJSON is one line of logs -f --json.
type followJSON struct {
	ProcessID string      `json:"processId"`
	Instance  string      `json:"instance,omitempty"`
	Output    string      `json:"output,omitempty"`
	Tail      bool        `json:"tail,omitempty"`
	Missed    int64       `json:"missed,omitempty"`
	End       *api.LogEnd `json:"end,omitempty"`
}

func newFollowPrinter(w, errw io.Writer, json bool) *followPrinter {
	return &followPrinter{w: w, errw: errw, json: json, partial: map[string]*partialLine{}}
}

func (fp *followPrinter) print(p api.ManagedProcess, o control.Output, prefixed bool) error {
	if fp.err != nil {
		return fp.err
	}
	if o.Truncated {
		fp.note(p, "older lines left out: "+api.TruncatedWhy)
	}
	switch {
	case o.Missed != 0 && fp.json:
		fp.err = printJSONLine(fp.w, followJSON{ProcessID: p.ID, Instance: p.Instance, Missed: o.Missed})
	case o.Missed < 0:
		fp.note(p, "some output may be missing: its node began counting anew (it restarted)")
	case o.Missed > 0:
		fp.note(p, fmt.Sprintf("%d bytes of output missed: they came faster than they could be passed on", o.Missed))
	}
	switch {
	case len(o.Data) == 0 || fp.err != nil:
	case fp.json:
		fp.err = printJSONLine(fp.w, followJSON{ProcessID: p.ID, Instance: p.Instance, Output: string(o.Data), Tail: o.Tail})
	case !prefixed:
		_, fp.err = fp.w.Write(o.Data)
	default:
		fp.lines(p, o.Data)
	}
	return fp.err
}

// lines prints the whole lines of data, prefixed, and keeps an
// unfinished last one for later.
func (fp *followPrinter) lines(p api.ManagedProcess, data []byte) {
	pl := fp.partial[p.ID]
	if pl == nil {
		pl = &partialLine{p: p}
		fp.partial[p.ID] = pl
	}
	fp.prefixed(p, pl.lines.Add(data))
}

// prefixed prints whole lines, each prefixed with its process.
func (fp *followPrinter) prefixed(p api.ManagedProcess, lines []byte) {
	if len(lines) == 0 || fp.err != nil {
		return
	}
	var b strings.Builder
	for len(lines) > 0 {
		nl := bytes.IndexByte(lines, '\n') + 1
		b.WriteString(fp.prefix(p))
		b.Write(lines[:nl])
		lines = lines[nl:]
	}
	_, fp.err = io.WriteString(fp.w, b.String())
}

// prefix is what a process's lines start with: its instance name, or the
// start of its id.
func (fp *followPrinter) prefix(p api.ManagedProcess) string {
	name := p.Instance
	if name == "" {
		name = strings.TrimPrefix(p.ID, api.IDPrefix)
		name = name[:min(len(name), 8)]
	}
	fp.width = max(fp.width, len(name))
	return fmt.Sprintf("%-*s | ", fp.width, name)
}

// end prints what is left of a process's output once it has ended.
func (fp *followPrinter) end(p api.ManagedProcess, e *api.LogEnd) error {
	if pl := fp.partial[p.ID]; pl != nil {
		fp.prefixed(p, pl.lines.Rest())
	}
	delete(fp.partial, p.ID)
	if e != nil && fp.json && fp.err == nil {
		fp.err = printJSONLine(fp.w, followJSON{ProcessID: p.ID, Instance: p.Instance, End: e})
	} else if e != nil {
		fp.note(p, "ended: "+describeEnd(*e))
	}
	return fp.err
}

// flush prints the unfinished lines left.
func (fp *followPrinter) flush() error {
	for _, pl := range fp.partial {
		fp.prefixed(pl.p, pl.lines.Rest())
	}
	clear(fp.partial)
	return fp.err
}

// note tells stderr something about a followed process.
func (fp *followPrinter) note(p api.ManagedProcess, what string) {
	who := p.Instance
	if who == "" {
		who = p.ID
	} else {
		who += " (" + p.ID + ")"
	}
	fmt.Fprintf(fp.errw, "corralctl: %s: %s\n", who, what)
}

func describeEnd(e api.LogEnd) string {
	s := string(e.Status)
	switch {
	case e.ExitCode != nil:
		s += fmt.Sprintf(", exit code %d", *e.ExitCode)
	case e.Error != "":
		s += ", " + e.Error
	}
	return s
}

// printJSONLine writes v as one line of JSON, with <, > and & left as
// they are.
func printJSONLine(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}
