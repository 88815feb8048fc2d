package main

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/corral-run/corral/api"
	"github.com/spf13/cobra"
)

func (a *app) defsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "defs",
		Short: "List the definitions of every node",
		Args:  argNames(),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctl, err := a.control()
			if err != nil {
				return err
			}
			replies, err := ctl.Definitions(cmd.Context())
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if a.json {
				return printJSON(w, replies)
			}
			t := newTable(w, "NODE", "NAME", "COMMAND", "EVENTS", "AUTORESTART")
			for _, r := range replies {
				for _, d := range r.Definitions {
					t.row(r.Node, d.Name, commandLine(d), joinOr(eventNames(d), "any"), yesNo(d.AutoRestart))
				}
			}
			if err := t.flush(); err != nil {
				return err
			}
			for _, r := range replies {
				for _, name := range r.Shadowed {
					fmt.Fprintf(w, "note: node %s does not use the applied definition %q: its own configuration defines %q\n", r.Node, name, name)
				}
			}
			return nil
		},
	}
}

// commandLine is the definition's command and arguments, quoted where a
// shell would need it.
func commandLine(d api.DefinitionInfo) string {
	words := append([]string{d.Command}, d.Args...)
	for i, w := range words {
		if w == "" || strings.ContainsAny(w, " \t\n\"'\\$`") {
			words[i] = strconv.Quote(w)
		}
	}
	return strings.Join(words, " ")
}

func eventNames(d api.DefinitionInfo) []string {
	names := make([]string, 0, len(d.Events))
	for name := range d.Events {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
