package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus"
	"github.com/corral-run/corral/bus/catalog"
	"github.com/corral-run/corral/bus/control"
	"github.com/corral-run/corral/internal/await"
)

func compact(t *testing.T, raw []byte) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	return b.String()
}

// rows splits a table into its rows of fields, header first.
func rows(t *testing.T, table string) [][]string {
	t.Helper()
	var out [][]string
	for line := range strings.Lines(table) {
		out = append(out, strings.Fields(line))
	}
	if len(out) == 0 {
		t.Fatalf("no table in %q", table)
	}
	return out
}

// column returns the index of the header name.
func column(t *testing.T, header []string, name string) int {
	t.Helper()
	for i, h := range header {
		if h == name {
			return i
		}
	}
	t.Fatalf("no column %s in %v", name, header)
	return -1
}

// processRow returns the row of the table for process id, or nil.
func processRow(t *testing.T, table, id string) map[string]string {
	t.Helper()
	rs := rows(t, table)
	for _, r := range rs[1:] {
		if r[0] == id {
			m := map[string]string{}
			for i, h := range rs[0] {
				m[h] = r[i]
			}
			return m
		}
	}
	return nil
}

// spawned runs spawn and returns the new process's id from its table.
func spawned(t *testing.T, n *testNode, args ...string) string {
	t.Helper()
	rs := rows(t, n.ok(t, append([]string{"spawn"}, args...)...))
	if len(rs) != 2 || !strings.HasPrefix(rs[1][0], "proc_") {
		t.Fatalf("spawn printed %v, want a header and one process", rs)
	}
	return rs[1][0]
}

func TestNodesAndDefinitions(t *testing.T) {
	n := startNode(t)

	rs := rows(t, n.ok(t, "nodes"))
	if strings.Join(rs[0], " ") != "NODE LABELS VERSION UPTIME PROCESSES RUNNING CPU% MEM DEFINITIONS DURABLE DROPPED STATE" {
		t.Errorf("nodes header = %v", rs[0])
	}
	if len(rs) != 2 {
		t.Fatalf("nodes = %v, want n1 alone", rs)
	}
	row := map[string]string{}
	for i, h := range rs[0] {
		row[h] = rs[1][i]
	}
	if row["NODE"] != "n1" || row["LABELS"] != "role=test,zone=a" || row["VERSION"] != bus.Version || row["DEFINITIONS"] != "sleeper,talker" ||
		row["DURABLE"] != "no" || row["DROPPED"] != "0" || row["STATE"] != "alive" {
		t.Errorf("nodes = %v, want n1 alive with its labels, sleeper,talker", row)
	}
	if !regexp.MustCompile(`^\d+\.\d$`).MatchString(row["CPU%"]) || !regexp.MustCompile(`^[\d.]+[kMG]?B/[\d.]+[kMG]?B$`).MatchString(row["MEM"]) {
		t.Errorf("host CPU%%/MEM = %q/%q", row["CPU%"], row["MEM"])
	}
	var nodes []api.NodeInfo
	if err := json.Unmarshal([]byte(n.ok(t, "nodes", "--json")), &nodes); err != nil || len(nodes) != 1 || nodes[0].ID != "n1" {
		t.Errorf("nodes --json = %+v, %v", nodes, err)
	}

	rs = rows(t, n.ok(t, "defs"))
	if strings.Join(rs[0], " ") != "NODE NAME COMMAND EVENTS AUTORESTART" {
		t.Errorf("defs header = %v", rs[0])
	}
	if len(rs) != 3 || strings.Join(rs[2], " ") != "n1 talker sh -c \"echo hello from $GREETING; exec sleep 30\" any no" ||
		strings.Join(rs[1], " ") != "n1 sleeper sleep 30 any no" {
		t.Errorf("defs = %q", rs)
	}
	var defs []api.DefinitionsReply
	if err := json.Unmarshal([]byte(n.ok(t, "--json", "defs")), &defs); err != nil || len(defs) != 1 || len(defs[0].Definitions) != 2 {
		t.Errorf("defs --json = %+v, %v", defs, err)
	}
}

func TestProcessLifecycle(t *testing.T) {
	n := startNode(t)
	ctx := t.Context()

	id := spawned(t, n, "sleeper")
	mp, err := n.Ctl.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	row := processRow(t, n.ok(t, "ps"), id)
	if row == nil || row["NAME"] != "sleeper" || row["NODE"] != "n1" || row["STATUS"] != "running" ||
		row["PID"] != strconv.Itoa(mp.PID) || row["RESTARTS"] != "0" || !strings.HasSuffix(row["UPTIME"], "s") {
		t.Errorf("ps row = %v, want sleeper running on n1 with pid %d", row, mp.PID)
	}
	// Once the node has sampled the process, ps shows its CPU and memory.
	if !await.Poll(10*time.Second, func() bool {
		row = processRow(t, n.ok(t, "ps"), id)
		return row["MEM"] != "-"
	}) {
		t.Fatalf("ps never showed memory: %v", row)
	}
	if !strings.HasSuffix(row["MEM"], "B") || row["CPU%"] == "-" {
		t.Errorf("ps CPU%%/MEM = %q/%q", row["CPU%"], row["MEM"])
	}

	fields := n.ok(t, "get", id)
	for _, want := range []string{"id:", id, "status:", "running", "pid:", strconv.Itoa(mp.PID), "metadata:", "{}", "exitCode:", "-"} {
		if !strings.Contains(fields, want) {
			t.Errorf("get does not show %q:\n%s", want, fields)
		}
	}
	var got api.ManagedProcess
	if err := json.Unmarshal([]byte(n.ok(t, "get", id, "--json")), &got); err != nil || got.ID != id || got.PID != mp.PID {
		t.Errorf("get --json = %+v, %v", got, err)
	}

	var list control.ListResult
	if err := json.Unmarshal([]byte(n.ok(t, "--json", "ps")), &list); err != nil {
		t.Fatalf("ps --json does not parse as a ListResult: %v", err)
	}
	if len(list.Processes) != 1 || list.Processes[0].ID != id || strings.Join(list.Nodes, ",") != "n1" {
		t.Errorf("ps --json = %+v", list)
	}

	// sleep never connects to its socket.
	n.fails(t, 1, "no open connection", "send", id, `{"hello":"world"}`)

	other := spawned(t, n, "sleeper", "--node", "n1", "--meta", `{"job":7}`, "--env", "A=b=c", "--cwd", "/")
	if err := json.Unmarshal([]byte(n.ok(t, "--json", "get", other)), &got); err != nil || compact(t, got.Metadata) != `{"job":7}` {
		t.Errorf("metadata of %s = %s, %v", other, got.Metadata, err)
	}

	row = processRow(t, n.ok(t, "stop", id), id)
	if row == nil || row["STATUS"] != "stopped" {
		t.Errorf("stop printed %v, want %s stopped", row, id)
	}
	if row := processRow(t, n.ok(t, "ps"), id); row != nil {
		t.Errorf("ps shows the stopped process: %v", row)
	}
	if row := processRow(t, n.ok(t, "ps", "--all"), id); row == nil || row["STATUS"] != "stopped" {
		t.Errorf("ps --all row = %v, want stopped", row)
	}
	n.fails(t, 1, "not running", "stop", id)

	restartedRows := rows(t, n.ok(t, "restart", other))
	if len(restartedRows) != 2 || restartedRows[1][0] == other || restartedRows[1][4] != "running" {
		t.Errorf("restart printed %v, want a new running process", restartedRows)
	}
	newID := restartedRows[1][0]
	if got, err := n.Ctl.Get(ctx, newID); err != nil || string(got.Metadata) != `{"job":7}` || got.Restarts != 1 {
		t.Errorf("restarted process = %+v, %v, want the same metadata and 1 restart", got, err)
	}

	third := spawned(t, n, "talker")
	var stopped []api.ManagedProcess
	if err := json.Unmarshal([]byte(n.ok(t, "--json", "stop", "--all", "--name", "talker")), &stopped); err != nil ||
		len(stopped) != 1 || stopped[0].ID != third || stopped[0].Status != "stopped" {
		t.Errorf("stop --all --name talker = %+v, %v", stopped, err)
	}
	rs := rows(t, n.ok(t, "stop", "--all", "--signal", "SIGINT"))
	if len(rs) != 2 || rs[1][0] != newID || rs[1][4] != "stopped" {
		t.Errorf("stop --all printed %v, want %s stopped", rs, newID)
	}
	if rs := rows(t, n.ok(t, "ps")); len(rs) != 1 {
		t.Errorf("ps after stop --all = %v, want no processes", rs)
	}
	if list, err := n.Ctl.List(ctx, api.ListRequest{All: true}); err != nil || len(list.Processes) != 4 {
		t.Errorf("processes after all that: %+v, %v, want 4", list, err)
	}
}

func TestLogs(t *testing.T) {
	n := startNode(t)
	id := spawned(t, n, "talker", "--env", "GREETING=the-test")
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		out := n.ok(t, "logs", id, "--lines", "5")
		if out == "hello from the-test\n" {
			break
		}
		if out != "" || time.Now().After(deadline) {
			t.Fatalf("logs = %q, want the talker's line", out)
		}
		<-tick.C
	}
	var reply api.LogsReply
	if err := json.Unmarshal([]byte(n.ok(t, "logs", id, "--json")), &reply); err != nil || reply.ProcessID != id || reply.Log != "hello from the-test\n" {
		t.Errorf("logs --json = %+v, %v", reply, err)
	}
	if out := n.ok(t, "logs", id, "--since", "1h"); out != "hello from the-test\n" {
		t.Errorf("logs --since 1h = %q", out)
	}
	// Of the ended process, -f prints the tail and returns; with --json,
	// one object per piece of output, then its end.
	if _, err := n.Ctl.Stop(t.Context(), id, ""); err != nil {
		t.Fatal(err)
	}
	if out := n.ok(t, "logs", "-f", id); out != "hello from the-test\n" {
		t.Errorf("logs -f of the ended process = %q", out)
	}
	lines := strings.Split(strings.TrimSpace(n.ok(t, "--json", "logs", "-f", id)), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `"output":"hello from the-test\n"`) || !strings.Contains(lines[1], `"end":{"processId":"`+id+`","status":"stopped"`) {
		t.Errorf("logs -f --json = %q", lines)
	}
}

func TestErrors(t *testing.T) {
	n := startNode(t)
	id := spawned(t, n, "sleeper")

	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"spawn of an undefined name", []string{"spawn", "nope"}, 1, "no node defines"},
		{"spawn on an unknown node", []string{"spawn", "sleeper", "--node", "n9"}, 1, `node "n9" is unreachable`},
		{"get of an unknown id", []string{"get", "proc_nope"}, 1, "no such process"},
		{"get of an unknown full id", []string{"get", "proc_aaaaaaaaaaaaaaaa"}, 1, "no such process"},
		{"stop of an unknown id", []string{"stop", "proc_nope"}, 1, "no such process"},
		{"logs of an unknown id", []string{"logs", "proc_nope"}, 1, "no such process"},
		{"unknown signal", []string{"stop", id, "--signal", "SIGBOGUS"}, 1, "unknown signal"},
		{"meta not an object", []string{"spawn", "sleeper", "--meta", "[1]"}, 2, "must be a JSON object"},
		{"meta not JSON", []string{"spawn", "sleeper", "--meta", "{"}, 2, "--meta is not valid JSON"},
		{"env without =", []string{"spawn", "sleeper", "--env", "A"}, 2, "KEY=VALUE"},
		{"stop with neither a process nor --all", []string{"stop"}, 2, "missing PROCESS"},
		{"stop with a process and --all", []string{"stop", id, "--all"}, 2, "not more than one"},
		{"stop with a process and --name", []string{"stop", id, "--name", "sleeper"}, 2, "not more than one"},
		{"send of invalid JSON", []string{"send", id, "{"}, 2, "not valid JSON"},
		{"send without a message", []string{"send", id}, 2, "missing JSON"},
		{"get with two ids", []string{"get", id, id}, 2, "unexpected argument"},
		{"unknown flag", []string{"ps", "--bogus"}, 2, "unknown flag: --bogus"},
		{"unknown command", []string{"pss"}, 2, `unknown command "pss" (did you mean "ps"?)`},
		{"bad timeout", []string{"--timeout", "soon", "ps"}, 2, "--timeout"},
		{"lines not positive", []string{"logs", id, "--lines", "0"}, 2, "--lines must be positive"},
		{"lines and tail", []string{"logs", id, "--lines", "3", "--tail", "3"}, 2, "--lines and --tail are the same"},
		{"tail out of range", []string{"logs", "-f", id, "--tail", "10001"}, 2, "--tail must be 0 to 10000"},
		{"tail negative", []string{"logs", "-f", id, "--tail", "-1"}, 2, "--tail must be 0 to 10000"},
		{"logs since not positive", []string{"logs", id, "--since", "0s"}, 2, "--since must be positive"},
		{"follow of an unknown id", []string{"logs", "-f", "proc_aaaaaaaaaaaaaaaa"}, 1, "no such process"},
		{"follow of an unknown name", []string{"logs", "-f", "nosuch"}, 1, "no process, definition or service has that name"},
		{"since not positive", []string{"events", "--since", "-1m"}, 2, "--since must be positive"},
		{"process without an id", []string{"events", "--process", ""}, 2, "--process needs a process id"},
		{"history without JetStream", []string{"events", "--since", "1m"}, 1, "no event history: JetStream is not available"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { n.fails(t, tt.code, tt.want, tt.args...) })
	}
	// Nothing was sent for the usage errors: still one process.
	if list, err := n.Ctl.List(t.Context(), api.ListRequest{All: true}); err != nil || len(list.Processes) != 1 {
		t.Errorf("processes = %+v, %v, want only %s", list, err, id)
	}
}

func TestConnectionFailure(t *testing.T) {
	const url = "nats://127.0.0.1:1"
	start := time.Now()
	r := runCtl(t, "--server", url, "--timeout", "2s", "ps")
	if r.code != 1 || !strings.HasPrefix(r.stderr, "corralctl: cannot connect to NATS at "+url) {
		t.Errorf("ps against nothing: %v", r)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("failing to connect took %v", d)
	}
	// $NATS_URL is the default server.
	cmd := exec.Command(corralctl, "nodes")
	cmd.Env = append(cmd.Environ(), "NATS_URL="+url)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), url) {
		t.Errorf("with NATS_URL=%s: %v, %s", url, err, out)
	}
}

// tail is a running "corralctl events".
type tail struct {
	cmd   *exec.Cmd
	lines chan string // stdout, closed at EOF
	ready chan string // the stderr notice
	done  chan struct{}
}

func startTail(t *testing.T, n *testNode, args ...string) *tail {
	t.Helper()
	cmd := exec.Command(corralctl, append([]string{"--server", n.URL}, args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tl := &tail{cmd: cmd, lines: make(chan string, 100), ready: make(chan string, 1), done: make(chan struct{})}
	go func() {
		defer close(tl.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			tl.lines <- sc.Text()
		}
	}()
	go func() {
		defer close(tl.done)
		sc := bufio.NewScanner(stderr)
		if sc.Scan() {
			tl.ready <- sc.Text()
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	select {
	case line := <-tl.ready:
		if !strings.Contains(line, "listening on") {
			t.Fatalf("events said %q on stderr, want the listening notice", line)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("events never said it was listening")
	}
	return tl
}

// next returns the next stdout line that keep accepts.
func (tl *tail) next(t *testing.T, keep func(string) bool) string {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case line, ok := <-tl.lines:
			if !ok {
				t.Fatal("events ended")
			}
			if keep(line) {
				return line
			}
		case <-deadline:
			t.Fatal("no such line from events")
		}
	}
}

// interrupt sends Ctrl-C and checks that events ends with status 0.
func (tl *tail) interrupt(t *testing.T) {
	t.Helper()
	if err := tl.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-tl.done:
	case <-time.After(10 * time.Second):
		t.Fatal("events did not stop on SIGINT")
	}
	for range tl.lines {
	}
	if err := tl.cmd.Wait(); err != nil {
		t.Errorf("events after SIGINT: %v", err)
	}
}

func TestEventsJSON(t *testing.T) {
	n := startNode(t)
	tl := startTail(t, n, "events", "--json")
	mp, err := n.Ctl.Spawn(t.Context(), "", "sleeper", api.SpawnRequest{})
	if err != nil {
		t.Fatal(err)
	}
	line := tl.next(t, func(string) bool { return true })
	var e control.Event
	if err := json.Unmarshal([]byte(line), &e); err != nil {
		t.Fatalf("events --json printed %q: %v", line, err)
	}
	var payload map[string]any
	if err := json.Unmarshal(e.Data, &payload); err != nil {
		t.Fatal(err)
	}
	if e.Subject != bus.SubjectSpawned || payload["processId"] != mp.ID || payload["pid"] != float64(mp.PID) ||
		e.Header(bus.HeaderProcessID) != mp.ID || e.Header(bus.HeaderNode) != "n1" {
		t.Errorf("first event = %s, want process.spawned of %s with its headers", line, mp.ID)
	}
	tl.interrupt(t)
}

func TestEventsHuman(t *testing.T) {
	n := startNode(t)
	tl := startTail(t, n, "events", "process.*.greeting")
	pub, err := nats.Connect(n.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	for _, m := range [][2]string{{"process.other", `{"skip":1}`}, {"process.talker.greeting", "{\n  \"text\": \"hi\"\n}"}} {
		if err := pub.Publish(m[0], []byte(m[1])); err != nil {
			t.Fatal(err)
		}
	}
	// The time it was received, the node that published it ("-": none
	// said), the subject and the payload on one line.
	if line := tl.next(t, func(string) bool { return true }); !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}  -  process\.talker\.greeting  \{"text":"hi"\}$`).MatchString(line) {
		t.Errorf("events printed %q", line)
	}
	tl.interrupt(t)
}

// --no-heartbeats leaves out the periodic heartbeats and stats.
func TestEventsWithoutHeartbeats(t *testing.T) {
	n := startNode(t)
	tl := startTail(t, n, "events", "--no-heartbeats")
	pub, err := nats.Connect(n.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	for _, s := range []string{bus.SubjectHeartbeat, bus.SubjectStats, bus.ProcessStatsSubject("talker"), "process.talker.greeting"} {
		if err := pub.Publish(s, []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	if line := tl.next(t, func(string) bool { return true }); !strings.Contains(line, "process.talker.greeting") {
		t.Errorf("the first line printed is %q, want the greeting", line)
	}
	tl.interrupt(t)
}

// stored waits until the event stream holds a message on subject about
// process id.
func (n *testNode) stored(t *testing.T, subject, id string) {
	t.Helper()
	await.Until(t, 10*time.Second, subject+" of "+id+" to be stored", func() bool {
		found := false
		err := n.Ctl.History(t.Context(), control.HistoryOptions{Subject: subject, ProcessID: id}, func(control.Event) { found = true })
		if err != nil {
			t.Fatal(err)
		}
		return found
	})
}

func TestEventsSince(t *testing.T) {
	n := startHistoryNode(t)
	ctx := t.Context()
	mp, err := n.Ctl.Spawn(ctx, "", "sleeper", api.SpawnRequest{})
	if err != nil {
		t.Fatal(err)
	}
	n.stored(t, bus.SubjectSpawned, mp.ID)

	// History first: the spawn, published before events started.
	tl := startTail(t, n, "events", "--since", "1m", "--json")
	var e control.Event
	if line := tl.next(t, func(string) bool { return true }); json.Unmarshal([]byte(line), &e) != nil ||
		e.Subject != bus.SubjectSpawned || e.Header(bus.HeaderProcessID) != mp.ID || e.Seq != 1 || time.Since(e.Time) > time.Minute {
		t.Fatalf("first line = %s, want the stored process.spawned of %s", line, mp.ID)
	}
	// Then live.
	if _, err := n.Ctl.Stop(ctx, mp.ID, ""); err != nil {
		t.Fatal(err)
	}
	tl.next(t, func(line string) bool {
		return json.Unmarshal([]byte(line), &e) == nil && e.Subject == bus.SubjectStopped && e.Header(bus.HeaderProcessID) == mp.ID
	})
	tl.interrupt(t)
}

func TestEventsProcess(t *testing.T) {
	n := startHistoryNode(t)
	ctx := t.Context()
	a, err := n.Ctl.Spawn(ctx, "", "sleeper", api.SpawnRequest{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := n.Ctl.Spawn(ctx, "", "talker", api.SpawnRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Ctl.Stop(ctx, b.ID, ""); err != nil {
		t.Fatal(err)
	}
	n.stored(t, bus.SubjectStopped, b.ID)

	// Every line is a's: b's spawn and stop, stored before a's stop, are
	// filtered out.
	tl := startTail(t, n, "events", "--process", a.ID, "--json")
	only := func(subject string) {
		t.Helper()
		tl.next(t, func(line string) bool {
			var e control.Event
			if err := json.Unmarshal([]byte(line), &e); err != nil || e.Header(bus.HeaderProcessID) != a.ID {
				t.Fatalf("events --process %s printed %s", a.ID, line)
			}
			return e.Subject == subject
		})
	}
	only(bus.SubjectSpawned)
	if _, err := n.Ctl.Stop(ctx, a.ID, ""); err != nil {
		t.Fatal(err)
	}
	only(bus.SubjectStopped)
	tl.interrupt(t)

	// The human form starts with the time the event was stored and the
	// node that published it.
	tl = startTail(t, n, "events", "--process", b.ID, bus.SubjectSpawned)
	if line := tl.next(t, func(string) bool { return true }); !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}  n1  process\.spawned  \{"processId":"` + b.ID + `"`).MatchString(line) {
		t.Errorf("events --process %s process.spawned printed %q", b.ID, line)
	}
	tl.interrupt(t)
}

func TestSchema(t *testing.T) {
	var all map[string]json.RawMessage
	r := runCtl(t, "schema")
	if err := json.Unmarshal([]byte(r.stdout), &all); err != nil || r.code != 0 {
		t.Fatalf("schema: %v\n%v", err, r)
	}
	for _, name := range []string{"process.spawned", "process.node_lost", "corral.proc.<id>.get reply", "corral.node.<node>.spawn request", catalog.WireMessage} {
		if _, ok := all[name]; !ok {
			t.Errorf("schema does not list %q", name)
		}
	}
	if len(all) != len(catalog.All()) {
		t.Errorf("schema printed %d schemas, want %d", len(all), len(catalog.All()))
	}

	r = runCtl(t, "schema", "process.spawned")
	var one map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &one); err != nil || r.code != 0 || one["properties"] == nil {
		t.Errorf("schema process.spawned: %v\n%v", err, r)
	}
	r = runCtl(t, "schema", "wire child->node message")
	if err := json.Unmarshal([]byte(r.stdout), &one); err != nil || r.code != 0 {
		t.Errorf("schema with ->: %v\n%v", err, r)
	}
	r = runCtl(t, "schema", "process.nope")
	if r.code != 2 || !strings.Contains(r.stderr, `no schema named "process.nope"`) || !strings.Contains(r.stderr, "process.spawned") {
		t.Errorf("schema of an unknown name: %v", r)
	}
}
