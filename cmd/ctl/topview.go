package main

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/corral-run/corral/api"
)

// topView is what corralctl top shows: the cluster's processes by CPU, a
// selection, and the logs of one process. It knows nothing of terminals
// or NATS: top.go feeds it snapshots and keys, and prints what it draws.
type topView struct {
	nodes    []api.NodeInfo
	procs    []api.ManagedProcess // sorted by CPU, the busiest first
	at       time.Time
	selected string // the selected process's id
	offset   int    // the first row shown

	// logsOf is the process whose logs are shown instead of the table.
	logsOf string
	logs   string

	// confirm is a question waiting for y or n (a stop, a restart).
	confirm *topAction
	message string
}

// topAction is something to do to a process.
type topAction struct {
	verb string // "stop" or "restart"
	id   string
}

// topSnapshot sorts and keeps a fresh look at the cluster.
func (v *topView) update(nodes []api.NodeInfo, procs []api.ManagedProcess, at time.Time) {
	v.nodes, v.at = nodes, at
	slices.SortStableFunc(procs, func(a, b api.ManagedProcess) int {
		if c := cmp.Compare(cpuOf(b), cpuOf(a)); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	v.procs = procs
	if v.index() < 0 && len(procs) > 0 {
		v.selected = procs[0].ID
	}
}

// cpuOf is a process's CPU as last sampled; -1 when there is none, so
// that it sorts last.
func cpuOf(p api.ManagedProcess) float64 {
	if p.Stats == nil || p.Status.Finished() {
		return -1
	}
	return p.Stats.CPU.Percent
}

func (v *topView) index() int {
	return slices.IndexFunc(v.procs, func(p api.ManagedProcess) bool { return p.ID == v.selected })
}

// The keys top reads.
const (
	keyUp = iota + 256
	keyDown
	keyEsc
	keyEnter
)

// key handles a key press and returns what to do: quit, an action to
// carry out, or a process whose logs to show (nothing: draw again).
func (v *topView) key(k int) (quit bool, act *topAction) {
	if v.confirm == nil {
		v.message = ""
	}
	if v.confirm != nil {
		c := v.confirm
		v.confirm = nil
		if k == 'y' || k == 'Y' {
			v.message = c.verb + " " + c.id + "…"
			return false, c
		}
		v.message = c.verb + " cancelled"
		return false, nil
	}
	switch k {
	case 'q', 'Q', 3: // Ctrl-C
		if v.logsOf != "" && k != 3 {
			v.logsOf, v.logs = "", ""
			return false, nil
		}
		return true, nil
	case keyEsc:
		v.logsOf, v.logs = "", ""
	case keyUp, 'k':
		if i := v.index(); i > 0 {
			v.selected = v.procs[i-1].ID
		}
	case keyDown, 'j':
		if i := v.index(); i >= 0 && i+1 < len(v.procs) {
			v.selected = v.procs[i+1].ID
		}
	case 's', 'r':
		i := v.index()
		if i < 0 {
			v.message = "no process selected"
			return false, nil
		}
		verb := map[int]string{'s': "stop", 'r': "restart"}[k]
		if p := v.procs[i]; p.Status.Finished() || p.Status == api.StatusUnknown {
			v.message = fmt.Sprintf("cannot %s %s: it is %s", verb, p.ID, p.Status)
			return false, nil
		}
		v.confirm = &topAction{verb: verb, id: v.selected}
		v.message = fmt.Sprintf("%s %s? (y/n)", verb, v.selected)
	case 'l', keyEnter:
		if v.index() >= 0 {
			v.logsOf, v.logs = v.selected, ""
		}
	}
	return false, nil
}

// draw writes the screen, width columns by height rows, for a terminal in
// raw mode (lines end with \r\n).
func (v *topView) draw(w io.Writer, width, height int) {
	var b strings.Builder
	b.WriteString("\x1b[H\x1b[2J") // home, clear
	line := func(s string, attrs ...string) {
		if r := []rune(s); len(r) > width {
			s = string(r[:max(width, 0)])
		}
		b.WriteString(strings.Join(attrs, ""))
		b.WriteString(s)
		if len(attrs) > 0 {
			b.WriteString("\x1b[0m")
		}
		b.WriteString("\x1b[K\r\n")
	}
	gone, running := 0, 0
	for _, n := range v.nodes {
		if n.Gone {
			gone++
		}
	}
	for _, p := range v.procs {
		if !p.Status.Finished() {
			running++
		}
	}
	line(fmt.Sprintf("corralctl top  %s  %d nodes (%d gone)  %d processes, %d running", v.at.Format("15:04:05"), len(v.nodes), gone, len(v.procs), running), "\x1b[1m")
	if v.logsOf != "" {
		line("logs of "+v.logsOf+"   q or Esc: back", "\x1b[2m")
		rows := height - 3
		lines := strings.Split(strings.TrimRight(v.logs, "\n"), "\n")
		if v.logs == "" {
			lines = []string{"(no output yet)"}
		}
		for _, l := range lines[max(0, len(lines)-rows):] {
			line(strings.ReplaceAll(l, "\t", "    "))
		}
		line("")
		_, _ = io.WriteString(w, b.String())
		return
	}
	help := "↑↓/jk select  s stop  r restart  l logs  q quit"
	if v.message != "" {
		help = v.message
	}
	line(help, "\x1b[2m")
	line(fmt.Sprintf("%-22s %-16s %-12s %-9s %6s %9s %8s %8s", "ID", "NAME", "NODE", "STATUS", "CPU%", "MEM", "UPTIME", "RESTARTS"), "\x1b[7m")
	rows := max(height-4, 1)
	i := v.index()
	if i >= 0 {
		if i < v.offset {
			v.offset = i
		}
		if i >= v.offset+rows {
			v.offset = i - rows + 1
		}
	}
	v.offset = min(v.offset, max(len(v.procs)-rows, 0))
	for j := v.offset; j < len(v.procs) && j < v.offset+rows; j++ {
		p := v.procs[j]
		cpu, mem := "-", "-"
		if c := cpuOf(p); c >= 0 {
			cpu = strconv.FormatFloat(c, 'f', 1, 64)
			mem = humanBytes(p.Stats.Memory.RSS)
		}
		name := p.Name
		if p.Instance != "" {
			name = p.Instance
		}
		text := fmt.Sprintf("%-22s %-16s %-12s %-9s %6s %9s %8s %8d", p.ID, trunc(name, 16), trunc(p.Node, 12), trunc(status(p), 9),
			cpu, mem, uptime(p, v.at), p.Restarts)
		if p.ID == v.selected {
			line(text, "\x1b[7m")
		} else {
			line(text)
		}
	}
	_, _ = io.WriteString(w, b.String())
}

func trunc(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// parseKeys reads the key presses in what a terminal in raw mode sent:
// the arrows come as escape sequences.
func parseKeys(b []byte) []int {
	var keys []int
	for i := 0; i < len(b); i++ {
		switch {
		case b[i] == 0x1b && i+2 < len(b) && b[i+1] == '[' && b[i+2] == 'A':
			keys, i = append(keys, keyUp), i+2
		case b[i] == 0x1b && i+2 < len(b) && b[i+1] == '[' && b[i+2] == 'B':
			keys, i = append(keys, keyDown), i+2
		case b[i] == 0x1b && i+1 < len(b) && b[i+1] == '[':
			for i += 2; i < len(b) && (b[i] < 0x40 || b[i] > 0x7e); i++ { // another sequence: skipped
			}
		case b[i] == 0x1b:
			keys = append(keys, keyEsc)
		case b[i] == '\r' || b[i] == '\n':
			keys = append(keys, keyEnter)
		default:
			keys = append(keys, int(b[i]))
		}
	}
	return keys
}
