package main

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/corral-run/corral/bus"
)

func (a *app) eventsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "events [SUBJECT]",
		Short: "Print events as they happen, until Ctrl-C",
		Long: `Events subscribes to SUBJECT (default process.>, everything Corral publishes)
and prints one line per message: the subject and the payload, or with --json
an object with subject, headers and data. A notice goes to stderr once the
subscription is in place.`,
		Example: `  corralctl events
  corralctl events 'process.encoder.>' --json`,
		Args: argNames("?SUBJECT"),
		RunE: func(cmd *cobra.Command, args []string) error {
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
			show := func(e bus.Event) {
				if werr != nil {
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
				_, werr = fmt.Fprintf(w, "%s  %s\n", e.Subject, data.Bytes())
			}
			ready := bus.OnSubscribed(func() {
				fmt.Fprintf(cmd.ErrOrStderr(), "listening on %s at %s (Ctrl-C to stop)\n", subject, a.nc.ConnectedUrlRedacted())
			})
			if err := ctl.Events(cmd.Context(), subject, show, ready); err != nil {
				return err
			}
			return werr
		},
	}
}
