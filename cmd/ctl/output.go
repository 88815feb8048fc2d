package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus/control"
)

// printJSON writes v as indented JSON, with <, > and & left as they are.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table writes tab-separated rows as aligned columns, in one write when
// it is flushed (tabwriter alone writes each cell and each gap apart: a
// system call each on a terminal or a pipe, thousands for a long ps).
type table struct {
	bw *bufio.Writer
	tw *tabwriter.Writer
}

func newTable(w io.Writer, header ...string) *table {
	bw := bufio.NewWriterSize(w, 64<<10)
	t := &table{bw: bw, tw: tabwriter.NewWriter(bw, 0, 0, 2, ' ', 0)}
	t.row(header...)
	return t
}

func (t *table) row(cells ...string) { fmt.Fprintln(t.tw, strings.Join(cells, "\t")) }

func (t *table) flush() error {
	if err := t.tw.Flush(); err != nil {
		return err
	}
	return t.bw.Flush()
}

// printProcesses is the table of ps, and of the commands that return
// processes (spawn, stop, restart).
func printProcesses(w io.Writer, ps []api.ManagedProcess, now time.Time) error {
	t := newTable(w, "ID", "NAME", "INSTANCE", "NODE", "STATUS", "PID", "UPTIME", "CPU%", "MEM", "RESTARTS", "EXIT")
	for _, p := range ps {
		cpu, mem := "-", "-"
		if p.Stats != nil && !p.Status.Finished() {
			cpu = strconv.FormatFloat(p.Stats.CPU.Percent, 'f', 1, 64)
			mem = humanBytes(p.Stats.Memory.RSS)
		}
		t.row(p.ID, p.Name, orDash(p.Instance), p.Node, status(p), strconv.Itoa(p.PID), uptime(p, now), cpu, mem, strconv.Itoa(p.Restarts), exit(p))
	}
	return t.flush()
}

// exit is how a process ended: its exit code, the signal that killed it,
// or "-" while it runs (or when nobody could learn it: a re-adopted
// process, a lost node).
func exit(p api.ManagedProcess) string {
	switch {
	case p.ExitCode != nil:
		return strconv.Itoa(*p.ExitCode)
	case p.Status.Finished():
		if sig, ok := strings.CutPrefix(p.Error, "killed by signal "); ok {
			return sig
		}
		return "?"
	}
	return "-"
}

// status is the process status, marked when a heartbeat is overdue or a
// restart is pending.
func status(p api.ManagedProcess) string {
	switch {
	case p.Stale && !p.Status.Finished():
		return string(p.Status) + " (stale)"
	case p.RestartPending:
		return string(p.Status) + " (restarting)"
	case p.Held:
		return string(p.Status) + " (held)"
	}
	return string(p.Status)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// humanBytes renders a byte count in decimal units: 950B, 12.3MB, 1.2GB.
func humanBytes(b float64) string {
	switch {
	case b >= 1e9:
		return strconv.FormatFloat(b/1e9, 'f', 1, 64) + "GB"
	case b >= 1e6:
		return strconv.FormatFloat(b/1e6, 'f', 1, 64) + "MB"
	case b >= 1e3:
		return strconv.FormatFloat(b/1e3, 'f', 1, 64) + "kB"
	}
	return strconv.FormatFloat(b, 'f', 0, 64) + "B"
}

// uptime is how long p ran: from its start to its end, or to now.
func uptime(p api.ManagedProcess, now time.Time) string {
	if p.StartedAt.IsZero() {
		return "-"
	}
	end := now
	if p.EndedAt != nil {
		end = *p.EndedAt
	}
	return humanDuration(end.Sub(p.StartedAt))
}

// humanDuration renders d with its two largest units: 42s, 3m07s, 5h02m, 3d04h.
func humanDuration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	s := int64(d / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	case s < 86400:
		return fmt.Sprintf("%dh%02dm", s/3600, s/60%60)
	}
	return fmt.Sprintf("%dd%02dh", s/86400, s/3600%24)
}

// printFields writes every field of v's JSON object as "key: value" lines,
// in the order of the object: strings bare, null as "-", anything else as
// compact JSON.
func printFields(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return fmt.Errorf("cannot print %T as fields: not a JSON object", v)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return err
		}
		fmt.Fprintf(tw, "%s:\t%s\n", tok, fieldValue(raw))
	}
	return tw.Flush()
}

func fieldValue(raw json.RawMessage) string {
	var s string
	switch {
	case string(raw) == "null":
		return "-"
	case json.Unmarshal(raw, &s) == nil:
		return s
	}
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return string(raw)
	}
	return b.String()
}

// joinOr joins names with commas, or returns none when there are none.
func joinOr(names []string, none string) string {
	if len(names) == 0 {
		return none
	}
	return strings.Join(names, ",")
}

// printNodes is the table of nodes.
func printNodes(w io.Writer, nodes []api.NodeInfo, now time.Time) error {
	t := newTable(w, "NODE", "LABELS", "VERSION", "UPTIME", "PROCESSES", "RUNNING", "CPU%", "MEM", "DEFINITIONS", "DURABLE", "DROPPED", "STATE")
	for _, n := range nodes {
		labels := control.LabelSelector(n.Labels)
		if labels == "" {
			labels = "-"
		}
		up, cpu, mem, state := humanDuration(now.Sub(n.StartedAt)), "-", "-", "alive"
		if n.Gone || n.StartedAt.IsZero() {
			up = "-"
		}
		switch {
		case n.Gone:
			state = "gone"
		case n.Isolated:
			// It sees fewer than half of the nodes it knows: a partition
			// cut it off, and it declares no node lost.
			state = "isolated"
		}
		if !n.Gone && n.Host != nil {
			cpu = strconv.FormatFloat(n.Host.CPUPercent, 'f', 1, 64)
			mem = humanBytes(float64(n.Host.MemUsedBytes)) + "/" + humanBytes(float64(n.Host.MemTotalBytes))
		}
		durable := "no"
		if n.Durable {
			durable = "yes"
		}
		t.row(n.ID, labels, n.Version, up, strconv.Itoa(n.Processes), strconv.Itoa(n.Running), cpu, mem,
			joinOr(n.Definitions, "-"), durable, strconv.FormatUint(n.Dropped, 10), state)
	}
	return t.flush()
}
