package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/corral-run/corral/bus"
	"github.com/corral-run/corral/bus/control"
)

func (a *app) eventsCmd() *cobra.Command {
	var since time.Duration
	var processID string
	var quiet bool
	cmd := &cobra.Command{
		Use:   "events [SUBJECT]",
		Short: "Print events as they happen, or replay their history first",
		Long: `Events subscribes to SUBJECT (default process.>, everything Corral publishes)
and prints one line per message until Ctrl-C: the time, the node that
published it, the subject and the payload, or with --json an object with
subject, headers and data. A notice goes to stderr once the subscription is
in place, and when the connection to NATS drops and comes back.
--no-heartbeats leaves out the heartbeats and stats that every process
sends every few seconds.

With --since or --process it first replays the history the nodes keep in the
JetStream stream CORRAL_EVENTS, then follows new events as they are stored.
The history holds the lifecycle messages and the children's events, not the
heartbeats and stats: those only come live.
Replayed lines start with the time the event was stored; with --json they
carry "time" and "seq" (the stream sequence). --process keeps only the events
of one process: its whole stored history, or from --since on.`,
		Example: `  corralctl events
  corralctl events 'process.encoder.>' --json
  corralctl events --since 10m
  corralctl events --since 1h 'process.*.complete'
  corralctl events --process proc_1x2y3z`,
		Args: argNames("?SUBJECT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("since") && since <= 0 {
				return usage(cmd, "--since must be positive, got %v", since)
			}
			if cmd.Flags().Changed("process") && processID == "" {
				return usage(cmd, "--process needs a process id")
			}
			subject := bus.SubjectAll
			if len(args) == 1 {
				subject = args[0]
			}
			ctl, err := a.control()
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			enc := json.NewEncoder(w)
			enc.SetEscapeHTML(false)
			var werr error
			show := func(e control.Event) {
				if werr != nil || quiet && chatter(e.Subject) {
					return
				}
				if a.json {
					werr = enc.Encode(e)
					return
				}
				var data bytes.Buffer
				if json.Compact(&data, e.Data) != nil {
					data.Write(e.Data)
				}
				at := e.Time // when it was stored (replayed), else received
				if at.IsZero() {
					at = time.Now()
				}
				node := cmp.Or(e.Header(bus.HeaderNode), "-")
				_, werr = fmt.Fprintf(w, "%s  %s  %s  %s\n", at.Local().Format("2006-01-02T15:04:05.000"), node, e.Subject, data.Bytes())
			}
			stopWatch := a.watchConnection(cmd.ErrOrStderr())
			defer stopWatch()
			if since == 0 && processID == "" {
				ready := control.OnSubscribed(func() {
					fmt.Fprintf(cmd.ErrOrStderr(), "listening on %s at %s (Ctrl-C to stop)\n", subject, a.nc.ConnectedUrlRedacted())
				})
				if err := ctl.Events(cmd.Context(), subject, show, ready); err != nil {
					return err
				}
				return werr
			}
			opts := control.HistoryOptions{Subject: subject, ProcessID: processID, Follow: true}
			from := "the start of the history"
			if since > 0 {
				opts.Since = time.Now().Add(-since)
				from = opts.Since.Local().Format("2006-01-02T15:04:05")
			}
			if processID != "" {
				from = "process " + processID + " from " + from
			}
			ready := control.OnSubscribed(func() {
				fmt.Fprintf(cmd.ErrOrStderr(), "listening on %s at %s after replaying %s (Ctrl-C to stop)\n",
					subject, a.nc.ConnectedUrlRedacted(), from)
			})
			if err := ctl.History(cmd.Context(), opts, show, ready); err != nil {
				return err
			}
			return werr
		},
	}
	cmd.Flags().DurationVar(&since, "since", 0, "replay the events stored in the last `DURATION` (e.g. 10m), then follow")
	cmd.Flags().StringVar(&processID, "process", "", "replay the stored events of process `ID` only, then follow them")
	cmd.Flags().BoolVar(&quiet, "no-heartbeats", false, "leave out heartbeats and stats")
	return cmd
}

// chatter reports whether subject is one of the periodic messages that
// --no-heartbeats leaves out: heartbeats and stats.
func chatter(subject string) bool {
	return subject == bus.SubjectHeartbeat || subject == bus.SubjectStats || strings.HasSuffix(subject, ".stats")
}
