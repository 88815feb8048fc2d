package e2e_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/corral-run/corral/internal/await"
)

// What the chaos test checks once the chaos stops, and how it explains a
// failure: the report, the checks, and what the nodes' logs and the
// children's own records say.

type chaosRow struct {
	check, value, want string
	ok                 bool
	examples           []string
}

type chaosReport struct {
	set  chaosSettings
	head []string
	rows []chaosRow
}

func (r *chaosReport) add(check, value, want string, ok bool, examples ...string) {
	r.rows = append(r.rows, chaosRow{check: check, value: value, want: want, ok: ok, examples: examples})
}

func (r *chaosReport) print(w io.Writer) {
	fmt.Fprintf(w, "\nCHAOS SUMMARY (mode %s, %v, %d processes, seed %d)\n", r.set.mode, r.set.duration, r.set.procs, r.set.seed)
	for _, h := range r.head {
		fmt.Fprintln(w, "  "+h)
	}
	width := 0
	for _, row := range r.rows {
		width = max(width, len(row.check))
	}
	vw := 0
	for _, row := range r.rows {
		vw = max(vw, len(row.value))
	}
	fmt.Fprintf(w, "  %-*s  %-*s  %-8s  %s\n", width, "CHECK", vw, "VALUE", "WANT", "RESULT")
	for _, row := range r.rows {
		res := "ok"
		if !row.ok {
			res = "FAIL"
		}
		fmt.Fprintf(w, "  %-*s  %-*s  %-8s  %s\n", width, row.check, vw, row.value, row.want, res)
	}
	for _, row := range r.rows {
		if len(row.examples) == 0 {
			continue
		}
		fmt.Fprintf(w, "  %s, examples:\n", row.check)
		for _, e := range row.examples[:min(len(row.examples), 10)] {
			fmt.Fprintln(w, "    "+e)
		}
		if len(row.examples) > 10 {
			fmt.Fprintf(w, "    … and %d more\n", len(row.examples)-10)
		}
	}
	fmt.Fprintln(w)
}

// check settles the cluster and checks what must hold.
func (c *chaos) check() *chaosReport {
	t := c.t
	r := &chaosReport{set: c.set}
	r.head = append(r.head, fmt.Sprintf("kill -9: %d nodes, %d NATS servers, %d children", c.kills["node"], c.kills["server"], c.kills["child"]))

	// Every node up and seeing the others.
	t0 := time.Now()
	for _, n := range c.nodes {
		n.waitCluster(t, c.ids)
	}
	up := time.Since(t0)
	r.head = append(r.head, fmt.Sprintf("every node up and seeing the three %v after the chaos stopped", up.Round(time.Millisecond)))

	// ps agrees on every node.
	t1 := time.Now()
	var why string
	converged := await.Poll(60*time.Second, func() bool {
		why = c.psAgree()
		return why == ""
	})
	took := time.Since(t1)
	psValue := took.Round(time.Millisecond).String()
	if !converged {
		psValue = "not within 60s"
	}
	r.add("ps converged on every node", psValue, "<= 5s", converged && took <= 5*time.Second, nonEmpty(why)...)

	// The service at its count, each instance once.
	t2 := time.Now()
	svcOK := await.Poll(60*time.Second, func() bool {
		why = c.serviceAtCount()
		return why == ""
	})
	svcValue := fmt.Sprintf("%d instances once each, %v", chaosServiceSize, time.Since(t2).Round(time.Millisecond))
	if !svcOK {
		svcValue = "not within 60s"
	}
	r.add("service at its desired count", svcValue, fmt.Sprint(chaosServiceSize), svcOK, nonEmpty(why)...)

	// Supervised twice, orphans.
	twice, orphans := c.twiceAndOrphans()
	r.add("processes supervised twice", strconv.Itoa(len(twice)), "0", len(twice) == 0, twice...)
	r.add("orphans", strconv.Itoa(len(orphans)), "0", len(orphans) == 0, orphans...)

	// Missing from ps --all.
	missing, total := c.missingFromPsAll()
	var mv []string
	bad := 0
	var examples []string
	for _, id := range c.ids {
		mv = append(mv, fmt.Sprintf("%s:%d", id, len(missing[id])))
		bad += len(missing[id])
		for _, p := range missing[id] {
			examples = append(examples, fmt.Sprintf("from %s: %s", id, p))
		}
	}
	r.add("processes missing from ps --all", fmt.Sprintf("%s of %d", strings.Join(mv, " "), total), "0", bad == 0, examples...)

	// The watchdog.
	kills := c.watchdogKills()
	var falseKills, other []string
	heartbeatKills := 0
	for _, k := range kills {
		if k.reason != "heartbeat" {
			other = append(other, k.String())
			continue
		}
		heartbeatKills++
		if k.journaled > 0 {
			falseKills = append(falseKills, k.String())
		}
	}
	r.add("watchdog kills of children that sent heartbeats", fmt.Sprintf("%d (of %d heartbeat kills, %d other)", len(falseKills), heartbeatKills, len(other)),
		"0", len(falseKills) == 0, falseKills...)

	// Acked events: stop the emitters (the service first, so that its
	// instances stay stopped), then read the stream.
	a := c.nodes[0]
	if _, err := a.runCtl("delete", "service", "workers"); err != nil {
		t.Errorf("cannot delete the service: %v", err)
	}
	if !await.Poll(60*time.Second, func() bool {
		_, err := a.runCtl("--timeout", "30s", "stop", "--all", "--name", "emitter")
		return err == nil && len(c.children()) == 0
	}) {
		t.Errorf("emitters still running after stop --all: %d", len(c.children()))
	}
	lost, dup, acks, nacks, stored := c.ackedEvents()
	r.head = append(r.head, fmt.Sprintf("%d acked events from %d processes, %d tick events stored, %d refused by a node (unavailable)",
		acks, len(c.ackFiles()), stored, nacks))
	lives := c.nodeLives()
	r.add("acked events lost", fmt.Sprintf("%d of %d", len(lost), acks), "0", len(lost) == 0, c.explainLost(lost, lives)...)
	r.add("events stored twice", strconv.Itoa(len(dup)), "0", len(dup) == 0, dup...)
	r.head = append(r.head, c.stalls(lives)...)

	// The nodes stop as an operator stops them.
	stopped, notes := c.stopNodes()
	r.add("nodes stopped cleanly (SIGTERM: exit 0 within 10s)", fmt.Sprintf("%d of %d", stopped, len(c.nodes)),
		fmt.Sprint(len(c.nodes)), stopped == len(c.nodes), notes...)
	r.head = append(r.head, "logs: "+c.dir)
	return r
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

// psAgree says how the nodes' ps differ, "" when they agree and none
// misses a node.
func (c *chaos) psAgree() string {
	var first []string
	for i, n := range c.nodes {
		res, err := n.ps2()
		if err != nil {
			return fmt.Sprintf("ps from %s: %v", n.id, err)
		}
		if len(res.Missing) > 0 {
			return fmt.Sprintf("ps from %s misses %v", n.id, res.Missing)
		}
		var rows []string
		for _, p := range res.Processes {
			rows = append(rows, p.ID+"@"+p.Node+":"+p.Status)
		}
		sort.Strings(rows)
		if i == 0 {
			first = rows
		} else if !slices.Equal(rows, first) {
			return fmt.Sprintf("ps from %s lists %d processes, from %s %d (first difference: %s)",
				n.id, len(rows), c.ids[0], len(first), firstDifference(first, rows))
		}
	}
	return ""
}

func firstDifference(a, b []string) string {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return x + " only in one"
		}
	}
	for _, x := range b {
		if !slices.Contains(a, x) {
			return x + " only in the other"
		}
	}
	return "none"
}

// ps2 is ps --json (running processes) asked of n, as an error rather than
// a failure.
func (n *node) ps2(args ...string) (listResult, error) {
	var res listResult
	out, err := n.runCtl(append([]string{"--timeout", "5s", "--json", "ps"}, args...)...)
	if err == nil {
		err = json.Unmarshal([]byte(out), &res)
	}
	return res, err
}

// serviceAtCount says what is wrong with the service, "" when each of its
// instances runs once.
func (c *chaos) serviceAtCount() string {
	res, err := c.nodes[0].ps2("--service", "workers")
	if err != nil {
		return err.Error()
	}
	running := map[string][]string{}
	for _, p := range res.Processes {
		if p.Status == "running" {
			running[p.Instance] = append(running[p.Instance], p.ID+"@"+p.Node)
		}
	}
	for k := range chaosServiceSize {
		inst := fmt.Sprintf("workers/%d", k)
		if len(running[inst]) != 1 {
			return fmt.Sprintf("%s runs %d times %v", inst, len(running[inst]), running[inst])
		}
	}
	if len(running) != chaosServiceSize {
		return fmt.Sprintf("%d instances run, want %d", len(running), chaosServiceSize)
	}
	return ""
}

// twiceAndOrphans compares the live children with what the nodes list:
// a process id running as two OS processes or listed running by two nodes
// is supervised twice; a live child no node lists running with its pid is
// an orphan. Twice, a few seconds apart, to let a restart in progress
// finish.
func (c *chaos) twiceAndOrphans() (twice, orphans []string) {
	look := func() (map[string]bool, map[string]bool) {
		res, err := c.nodes[0].ps2()
		if err != nil {
			c.t.Errorf("ps: %v", err)
			return nil, nil
		}
		listed := map[string][]process{}
		for _, p := range res.Processes {
			if p.Status == "running" || p.Status == "starting" || p.Status == "stopping" {
				listed[p.ID] = append(listed[p.ID], p)
			}
		}
		tw, orph := map[string]bool{}, map[string]bool{}
		byID := map[string][]child{}
		for _, ch := range c.children() {
			byID[ch.id] = append(byID[ch.id], ch)
		}
		for id, chs := range byID {
			if len(chs) > 1 {
				tw[fmt.Sprintf("%s runs as %d OS processes %v", id, len(chs), chs)] = true
			}
			for _, ch := range chs {
				if !slices.ContainsFunc(listed[id], func(p process) bool { return p.PID == ch.pid }) {
					orph[fmt.Sprintf("%s pid %d (mark %s), listed as %+v", id, ch.pid, ch.mark, listed[id])] = true
				}
			}
		}
		for id, ps := range listed {
			if len(ps) > 1 {
				tw[fmt.Sprintf("%s listed running %d times: %+v", id, len(ps), ps)] = true
			}
		}
		return tw, orph
	}
	tw1, or1 := look()
	time.Sleep(3 * time.Second)
	tw2, or2 := look()
	for k := range tw2 {
		if tw1[k] {
			twice = append(twice, k)
		}
	}
	for k := range or2 {
		if or1[k] {
			orphans = append(orphans, k)
		}
	}
	sort.Strings(twice)
	sort.Strings(orphans)
	return twice, orphans
}

// missingFromPsAll lists, by node, the processes that ran (they have an
// acks file, or the test spawned them) that ps --all from that node does
// not list.
func (c *chaos) missingFromPsAll() (map[string][]string, int) {
	ever := map[string]bool{}
	for _, id := range c.ackFiles() {
		ever[id] = true
	}
	for _, id := range c.spawned {
		ever[id] = true
	}
	out := map[string][]string{}
	for _, n := range c.nodes {
		res, err := n.ps2("--all")
		if err != nil {
			out[n.id] = []string{"cannot list: " + err.Error()}
			continue
		}
		listed := map[string]bool{}
		for _, p := range res.Processes {
			listed[p.ID] = true
		}
		for id := range ever {
			if !listed[id] {
				out[n.id] = append(out[n.id], id)
			}
		}
		sort.Strings(out[n.id])
	}
	return out, len(ever)
}

// watchdogKill is a kill by the watchdog, as a node logged it.
type watchdogKill struct {
	at        time.Time
	node      string
	process   string
	reason    string
	journaled int       // heartbeat intervals the child journaled as connected in the heartbeat timeout before the kill
	last      time.Time // the child's last journal entry before the kill
}

func (k watchdogKill) String() string {
	s := fmt.Sprintf("%s on %s at %s, reason %s", k.process, k.node, k.at.Format("15:04:05.000"), k.reason)
	if k.reason == "heartbeat" {
		s += fmt.Sprintf(": the child journaled %d heartbeat intervals connected in the %v before", k.journaled, chaosHeartbeatTimeout)
		if !k.last.IsZero() {
			s += fmt.Sprintf(", the last %v before the kill", k.at.Sub(k.last).Round(time.Millisecond))
		}
	}
	return s
}

// watchdogKills reads the kills from every node's logs, and holds each
// heartbeat kill against the child's journal: connected (so sending
// heartbeats) within the heartbeat timeout before the kill, the node had
// heard from it, or should have.
func (c *chaos) watchdogKills() []watchdogKill {
	var out []watchdogKill
	for _, path := range c.logs {
		f, err := os.Open(path)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if !strings.Contains(line, `msg="watchdog is killing process"`) {
				continue
			}
			k := watchdogKill{node: logField(line, "node"), process: logField(line, "process"), reason: logField(line, "reason")}
			k.at, _ = time.Parse(time.RFC3339Nano, logField(line, "time"))
			if k.reason == "heartbeat" {
				for _, ms := range journal(filepath.Join(c.ackDir, k.process+".alive")) {
					at := time.UnixMilli(ms)
					if at.After(k.at) {
						break
					}
					k.last = at
					// Leave out the last two intervals: a heartbeat queued
					// then may not have been written yet.
					if at.After(k.at.Add(-chaosHeartbeatTimeout)) && at.Before(k.at.Add(-2*chaosChildBeat)) {
						k.journaled++
					}
				}
			}
			out = append(out, k)
		}
		f.Close()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].at.Before(out[j].at) })
	return out
}

// logField reads key=value (or key="value") from a slog text line.
func logField(line, key string) string {
	i := strings.Index(line, " "+key+"=")
	if i < 0 {
		if !strings.HasPrefix(line, key+"=") {
			return ""
		}
		i = -1
	}
	rest := line[i+len(key)+2:]
	if strings.HasPrefix(rest, `"`) {
		if v, err := strconv.QuotedPrefix(rest); err == nil {
			s, _ := strconv.Unquote(v)
			return s
		}
	}
	v, _, _ := strings.Cut(rest, " ")
	return v
}

// journal reads a child's journal: unix milliseconds, one a line.
func journal(path string) []int64 {
	b, _ := os.ReadFile(path)
	var out []int64
	for l := range strings.Lines(string(b)) {
		if ms, err := strconv.ParseInt(strings.TrimSpace(l), 10, 64); err == nil {
			out = append(out, ms)
		}
	}
	return out
}

// ackedEvents holds every emitter's acked events against the stream.
func (c *chaos) ackedEvents() (lost []lostEvent, dup []string, acks, nacks, stored int) {
	counts := storedTicks(c.t, c.nodes[0].url)
	for _, m := range counts {
		for _, n := range m {
			stored += n
		}
	}
	for _, id := range c.ackFiles() {
		seqs := acked(c.t, c.ackDir, id)
		acks += len(seqs)
		at := ackTimes(filepath.Join(c.ackDir, id+".acked"))
		for _, seq := range seqs {
			if counts[id][seq] == 0 {
				lost = append(lost, lostEvent{id: id, seq: seq, at: at[seq]})
			}
		}
		b, _ := os.ReadFile(filepath.Join(c.ackDir, id+".nacked"))
		nacks += strings.Count(string(b), "\n")
	}
	for id, m := range counts {
		for seq, n := range m {
			if n > 1 {
				dup = append(dup, fmt.Sprintf("%s seq %d stored %d times", id, seq, n))
			}
		}
	}
	sort.Slice(lost, func(i, j int) bool { return lost[i].at.Before(lost[j].at) })
	sort.Strings(dup)
	return lost, dup, acks, nacks, stored
}

// lostEvent is an acked event the stream does not have.
type lostEvent struct {
	id  string
	seq int
	at  time.Time // when the child had its ack
}

// ackTimes reads when each seq of an acks file was acked.
func ackTimes(path string) map[int]time.Time {
	b, _ := os.ReadFile(path)
	out := map[int]time.Time{}
	for l := range strings.Lines(string(b)) {
		seq, ms, _ := strings.Cut(strings.TrimSpace(l), " ")
		n, err1 := strconv.Atoi(seq)
		m, err2 := strconv.ParseInt(ms, 10, 64)
		if err1 == nil && err2 == nil {
			out[n] = time.UnixMilli(m)
		}
	}
	return out
}

// nodeLife is one run of a corrald, as its log tells it.
type nodeLife struct {
	node      string
	n         int // its start, 1 first
	start     time.Time
	durableAt time.Time // "durable events on"; zero if never
	end       time.Time // its last line
	// resends: the relay's "sending again events not confirmed stored".
	resends       int
	resendFrom    time.Time
	resendTo      time.Time
	resendReasons map[string]int
	processes     []string // spawned by it
}

func (l nodeLife) name() string { return fmt.Sprintf("%s#%d", l.node, l.n) }

// nodeLives reads every corrald log of the run.
func (c *chaos) nodeLives() []nodeLife {
	var out []nodeLife
	for _, path := range c.logs {
		base := strings.TrimSuffix(filepath.Base(path), ".log") // corrald-<id>-<k>
		parts := strings.Split(base, "-")
		k, _ := strconv.Atoi(parts[len(parts)-1])
		l := nodeLife{node: parts[1], n: k, resendReasons: map[string]int{}}
		f, err := os.Open(path)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			at, err := time.Parse(time.RFC3339Nano, logField(line, "time"))
			if err != nil {
				continue
			}
			if l.start.IsZero() {
				l.start = at
			}
			l.end = at
			switch logField(line, "msg") {
			case "durable events on: a child's ack waits until JetStream stored the event":
				if l.durableAt.IsZero() {
					l.durableAt = at
				}
			case "sending again events not confirmed stored":
				if l.resends == 0 {
					l.resendFrom = at
				}
				l.resends++
				l.resendTo = at
				l.resendReasons[logField(line, "reason")]++
			case "process spawned":
				l.processes = append(l.processes, logField(line, "process"))
			}
		}
		f.Close()
		out = append(out, l)
	}
	return out
}

// explainLost groups the lost events by the life of the node that ran
// their process when they were acked, and says whether that node's relay
// was durable then.
func (c *chaos) explainLost(lost []lostEvent, lives []nodeLife) []string {
	owner := map[string]string{} // process → node
	for _, l := range lives {
		for _, p := range l.processes {
			owner[p] = l.node
		}
	}
	type group struct {
		life          string
		early         bool // acked before the life's relay was durable
		n             int
		from, to      time.Time
		durableAt     time.Time
		first         lostEvent
		lifeStartedAt time.Time
	}
	var groups []*group
	find := func(e lostEvent) *group {
		var life *nodeLife
		for i := range lives {
			l := &lives[i]
			if l.node == owner[e.id] && !e.at.Before(l.start) && !e.at.After(l.end.Add(time.Second)) {
				life = l
			}
		}
		name, early := "node "+owner[e.id]+" (no life of it covers the ack)", false
		var durableAt, started time.Time
		if life != nil {
			name, durableAt, started = "node "+life.name(), life.durableAt, life.start
			early = durableAt.IsZero() || e.at.Before(durableAt)
		}
		for _, g := range groups {
			if g.life == name && g.early == early {
				return g
			}
		}
		g := &group{life: name, early: early, from: e.at, durableAt: durableAt, first: e, lifeStartedAt: started}
		groups = append(groups, g)
		return g
	}
	for _, e := range lost {
		g := find(e)
		g.n++
		g.to = e.at
	}
	var out []string
	for _, g := range groups {
		s := fmt.Sprintf("%s: %d lost, acked %s to %s (e.g. %s seq %d)", g.life, g.n,
			g.from.Format("15:04:05.000"), g.to.Format("15:04:05.000"), g.first.id, g.first.seq)
		if g.early {
			s += fmt.Sprintf(": acked before that node's relay was durable (started %s, durable %s): its ack meant handed to NATS, and the stream did not store the event",
				g.lifeStartedAt.Format("15:04:05.000"), formatOr(g.durableAt, "never"))
		}
		out = append(out, s)
	}
	return out
}

func formatOr(t time.Time, none string) string {
	if t.IsZero() {
		return none
	}
	return t.Format("15:04:05.000")
}

// stalls describes where the durable path stalled: the relays that sent
// one event again and again, and the children that waited long for an ack.
func (c *chaos) stalls(lives []nodeLife) []string {
	var out []string
	for _, l := range lives {
		if l.resends < 3 {
			continue
		}
		var reasons []string
		for r, n := range l.resendReasons {
			reasons = append(reasons, fmt.Sprintf("%q ×%d", r, n))
		}
		sort.Strings(reasons)
		out = append(out, fmt.Sprintf("durable path stuck on node %s: events sent again %d times from %s to %s (%v; the node's life ended %s): %s",
			l.name(), l.resends, l.resendFrom.Format("15:04:05.000"), l.resendTo.Format("15:04:05.000"),
			l.resendTo.Sub(l.resendFrom).Round(time.Second), l.end.Format("15:04:05.000"), strings.Join(reasons, ", ")))
	}
	// Children: the longest wait between two acks (they emit one a second).
	waited, longest := 0, time.Duration(0)
	var who string
	for _, id := range c.ackFiles() {
		at := ackTimes(filepath.Join(c.ackDir, id+".acked"))
		var times []time.Time
		for _, t := range at {
			times = append(times, t)
		}
		sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
		worst := time.Duration(0)
		var when time.Time
		for i := 1; i < len(times); i++ {
			if d := times[i].Sub(times[i-1]); d > worst {
				worst, when = d, times[i-1]
			}
		}
		if worst > 10*time.Second {
			waited++
		}
		if worst > longest {
			longest, who = worst, fmt.Sprintf("%s after %s", id, when.Format("15:04:05.000"))
		}
	}
	out = append(out, fmt.Sprintf("children that waited more than 10 s for an ack (they emit one event a second): %d; the longest wait %v (%s)",
		waited, longest.Round(time.Millisecond), who))
	return out
}

// stopNodes stops every node as the tests' cleanup would, but reports
// instead of failing.
func (c *chaos) stopNodes() (int, []string) { return stopTogether(c.nodes) }
