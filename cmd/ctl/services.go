package main

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/corral-run/corral/api"
)

func (a *app) applyCmd() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "apply -f FILE.toml",
		Short: "Store services and definitions in the cluster's desired state",
		Long: `Apply stores the [services.<name>] and [processes.<name>] tables of a TOML
file in the cluster's desired state (a JetStream KV bucket), each adding or
replacing the one of its name; the others stay. A service keeps its instances
running across the nodes:

  [services.encoders]
  process = "encoder"          # a definition name
  instances = 6
  labels = { zone = "eu" }     # nodes that may run it (optional)
  max_per_node = 2             # optional
  metadata = { quality = "high" }

A [processes.<name>] table is a definition, as in corrald's file, with
nodes = { k = "v" } selecting the nodes that load it (those with
remote_definitions = true); a node's own file wins a name clash. The file is
checked as a whole first: one that is wrong anywhere changes nothing.
"-f -" reads standard input.`,
		Args: argNames(),
		RunE: func(cmd *cobra.Command, args []string) error {
			if file == "" {
				return usage(cmd, "missing -f FILE.toml")
			}
			var doc []byte
			var err error
			if file == "-" {
				doc, err = io.ReadAll(io.LimitReader(cmd.InOrStdin(), maxApplyBytes+1))
			} else {
				doc, err = readLimited(file, maxApplyBytes)
			}
			if err != nil {
				return err
			}
			if len(doc) > maxApplyBytes {
				return fmt.Errorf("cannot apply %s: it is more than %d bytes", file, maxApplyBytes)
			}
			ctl, err := a.control()
			if err != nil {
				return err
			}
			reply, err := ctl.Apply(cmd.Context(), string(doc))
			if err != nil {
				return err
			}
			if a.json {
				return printJSON(cmd.OutOrStdout(), reply)
			}
			w := cmd.OutOrStdout()
			for _, g := range []struct {
				what  string
				names []string
			}{{"created", reply.Created}, {"updated", reply.Updated}, {"unchanged", reply.Unchanged}} {
				for _, n := range g.names {
					fmt.Fprintf(w, "%s %s\n", n, g.what)
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "the TOML file to apply (- for standard input)")
	return cmd
}

// maxApplyBytes bounds an apply file: it travels in one NATS message.
const maxApplyBytes = 900 << 10

func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot apply: %w", err)
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, limit+1))
}

func (a *app) servicesCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "services",
		Short: "Show each service's desired instances against those running, and where",
		Long: `Services shows, for every service of the desired state, how many instances
it should have, how many run (a process of the instance that is running,
stopping, or restarting), how many a node holds down after their restart
limit (corralctl restart <service>/<k> brings one back), and on which nodes
they run.`,
		Args: argNames(),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctl, err := a.control()
			if err != nil {
				return err
			}
			st, err := ctl.Desired(cmd.Context())
			if err != nil {
				return err
			}
			res, err := ctl.List(cmd.Context(), api.ListRequest{All: true})
			if err != nil {
				return err
			}
			rows := serviceRows(st, res.Processes)
			if a.json {
				return printJSON(cmd.OutOrStdout(), rows)
			}
			t := newTable(cmd.OutOrStdout(), "SERVICE", "PROCESS", "DESIRED", "RUNNING", "HELD", "NODES")
			for _, r := range rows {
				t.row(r.Service, r.Process, strconv.Itoa(r.Desired), strconv.Itoa(r.Running), strconv.Itoa(r.Held), nodeCounts(r.Nodes))
			}
			if err := t.flush(); err != nil {
				return err
			}
			if st.Reconciler == "" && len(rows) > 0 {
				fmt.Fprintln(cmd.ErrOrStderr(), "corralctl: no node holds the reconciler's lease right now: instances are not being placed")
			}
			return nil
		},
	}
}

// serviceRow is one line of corralctl services.
type serviceRow struct {
	Service string         `json:"service"`
	Process string         `json:"process"`
	Desired int            `json:"desired"`
	Running int            `json:"running"`
	Held    int            `json:"held"`
	Nodes   map[string]int `json:"nodes"` // running instances by node
}

func serviceRows(st api.DesiredState, procs []api.ManagedProcess) []serviceRow {
	var rows []serviceRow
	for _, s := range st.Services {
		r := serviceRow{Service: s.Name, Process: s.Process, Desired: s.Instances, Nodes: map[string]int{}}
		running, held := map[string]bool{}, map[string]bool{}
		for _, p := range procs {
			if p.Service != s.Name {
				continue
			}
			switch {
			case p.Status != api.StatusUnknown && (!p.Status.Finished() || p.RestartPending):
				if !running[p.Instance] {
					running[p.Instance] = true
					r.Nodes[p.Node]++
				}
			case p.Held:
				held[p.Instance] = true
			}
		}
		r.Running = len(running)
		for inst := range held {
			if !running[inst] {
				r.Held++
			}
		}
		rows = append(rows, r)
	}
	return rows
}

// nodeCounts is "a:2,b:1", or "-".
func nodeCounts(m map[string]int) string {
	var parts []string
	for n, c := range m {
		parts = append(parts, n+":"+strconv.Itoa(c))
	}
	sort.Strings(parts)
	return list(parts)
}

func (a *app) scaleCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "scale SERVICE N",
		Short: "Set how many instances a service runs",
		Args:  argNames("SERVICE", "N"),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := strconv.Atoi(args[1])
			if err != nil || n < 0 {
				return usage(cmd, "N must be a whole number of 0 or more, got %q", args[1])
			}
			ctl, err := a.control()
			if err != nil {
				return err
			}
			spec, err := ctl.Scale(cmd.Context(), args[0], n)
			if err != nil {
				return err
			}
			if a.json {
				return printJSON(cmd.OutOrStdout(), spec)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "service/%s scaled to %d\n", spec.Name, spec.Instances)
			return nil
		},
	}
}

func (a *app) deleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "delete {service | definition} NAME",
		Short: "Delete a service (its instances stop) or an applied definition",
		Long: `Delete removes a service from the desired state, and the reconciler stops its
instances; or an applied definition, which the nodes drop (processes that run
it keep it until they end).`,
		Args: argNames("KIND", "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			kind := strings.TrimSuffix(args[0], "s")
			if kind != "service" && kind != "definition" {
				return usage(cmd, "delete what? %q is not service or definition", args[0])
			}
			ctl, err := a.control()
			if err != nil {
				return err
			}
			if err := ctl.Delete(cmd.Context(), kind, args[1]); err != nil {
				return err
			}
			if a.json {
				return printJSON(cmd.OutOrStdout(), api.OK{OK: true})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s/%s deleted\n", kind, args[1])
			return nil
		},
	}
}
