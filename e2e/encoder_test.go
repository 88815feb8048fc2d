package e2e_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// An encode spawned with corralctl goes spawned → connected → progress… →
// complete → stopped on the bus, each message with the process's headers
// and the event data spread next to processId and name.
func TestEncoderLifecycle(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	ev := watch(t, n.url)

	p := n.spawn(t, "encoder", `{"inputPath":"a","outputPath":"b","frames":20}`)
	ev.waitFor(t, "process.stopped", p.ID, nil)

	var subjects []string
	msgIDs := map[string]string{}
	for _, m := range ev.about(p.ID) {
		checkHeaders(t, m, n.id, p.ID, "encoder")
		if prev, dup := msgIDs[m.Header.Get("Nats-Msg-Id")]; dup {
			t.Errorf("%s and %s share Nats-Msg-Id %q", prev, m.Subject, m.Header.Get("Nats-Msg-Id"))
		}
		msgIDs[m.Header.Get("Nats-Msg-Id")] = m.Subject
		if s := m.Subject; len(subjects) == 0 || subjects[len(subjects)-1] != s {
			subjects = append(subjects, s) // runs of progress count once
		}
		data := payload(t, m)
		if data["processId"] != p.ID || data["name"] != "encoder" {
			t.Errorf("%s: payload %s lacks processId %q and name encoder", m.Subject, m.Data, p.ID)
		}
		switch m.Subject {
		case "process.spawned":
			if data["pid"] != float64(p.PID) || data["node"] != n.id {
				t.Errorf("process.spawned payload %s, want pid %d and node %s", m.Data, p.PID, n.id)
			}
		case "process.encoder.progress":
			for _, key := range []string{"percent", "fps", "currentFrame"} {
				if _, ok := data[key].(float64); !ok {
					t.Errorf("progress payload %s: %s is not a number at the top level", m.Data, key)
				}
			}
			if !strings.HasPrefix(m.Header.Get("Nats-Msg-Id"), p.ID+":") {
				t.Errorf("progress Nats-Msg-Id = %q, want %s:<the event's id>", m.Header.Get("Nats-Msg-Id"), p.ID)
			}
		case "process.encoder.complete":
			if _, ok := data["duration"].(float64); data["outputPath"] != "b" || !ok {
				t.Errorf("complete payload %s, want outputPath b and a duration", m.Data)
			}
		case "process.stopped":
			if data["exitCode"] != float64(0) {
				t.Errorf("stopped payload %s, want exitCode 0", m.Data)
			}
		}
	}
	want := []string{"process.spawned", "process.connected", "process.encoder.progress", "process.encoder.complete", "process.stopped"}
	if strings.Join(subjects, " ") != strings.Join(want, " ") {
		t.Errorf("messages about %s:\n got %v\nwant %v", p.ID, subjects, want)
	}
	last := ev.waitFor(t, "process.encoder.progress", p.ID, func(d map[string]any) bool { return d["currentFrame"] == float64(20) })
	if d := payload(t, last); d["percent"] != float64(100) {
		t.Errorf("last progress %s, want percent 100", last.Data)
	}

	// The control plane agrees: stopped with exit code 0, out of the
	// default listing, and its output kept.
	found := false
	for _, q := range n.listAll(t) {
		if q.ID == p.ID {
			found = true
			if q.Status != "stopped" || q.ExitCode == nil || *q.ExitCode != 0 {
				t.Errorf("ps --all: %s is %s with exit code %s, want stopped with 0", p.ID, q.Status, exitCode(q.ExitCode))
			}
		}
	}
	if !found {
		t.Errorf("ps --all does not list %s", p.ID)
	}
	if out := n.ctl(t, "ps", "--json"); strings.Contains(out, p.ID) {
		t.Errorf("ps without --all lists the stopped %s: %s", p.ID, out)
	}
	if out := n.ctl(t, "logs", p.ID); !strings.Contains(out, "encode complete") {
		t.Errorf("corralctl logs %s has no \"encode complete\":\n%s", p.ID, out)
	}
	if !gone(p.PID) {
		t.Errorf("pid %d of the stopped encoder still exists", p.PID)
	}
	if _, err := os.Stat(p.SocketPath); !os.IsNotExist(err) {
		t.Errorf("socket %s of the stopped encoder: %v, want it removed", p.SocketPath, err)
	}
}

// The ticker (the demo in tick mode) obeys the node's pause and resume
// commands and exits 0 on corralctl stop.
func TestTickerCommandsAndStop(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	ev := watch(t, n.url)

	p := n.spawn(t, "ticker", `{"intervalMs":20}`)
	tick := ev.waitFor(t, "process.ticker.tick", p.ID, func(d map[string]any) bool { return d["n"] == float64(2) })
	checkHeaders(t, tick, n.id, p.ID, "ticker")
	if at, _ := payload(t, tick)["at"].(string); at == "" {
		t.Errorf("tick payload %s has no at", tick.Data)
	} else if _, err := time.Parse(time.RFC3339Nano, at); err != nil {
		t.Errorf("tick at %q: %v", at, err)
	}

	n.ctl(t, "send", p.ID, `{"type":"pause"}`)
	n.waitLog(t, p.ID, "paused by the node")
	n.ctl(t, "send", p.ID, `{"type":"resume"}`)
	n.waitLog(t, p.ID, "resumed by the node")
	// Ticks go on after the resume, numbered on from the last one seen.
	var last float64
	for _, m := range ev.about(p.ID) {
		if m.Subject == "process.ticker.tick" {
			last, _ = payload(t, m)["n"].(float64)
		}
	}
	ev.waitFor(t, "process.ticker.tick", p.ID, func(d map[string]any) bool { return d["n"] == last+1 })

	var stopped process
	decode(t, n.ctl(t, "stop", p.ID, "--json"), &stopped)
	if stopped.Status != "stopped" || stopped.ExitCode == nil || *stopped.ExitCode != 0 {
		t.Errorf("corralctl stop: %s with exit code %s, want stopped with 0 (the demo exits 0 on SIGTERM)", stopped.Status, exitCode(stopped.ExitCode))
	}
	if !gone(p.PID) {
		t.Errorf("pid %d of the stopped ticker still exists", p.PID)
	}
}

// consumer-demo subscribes with bus.Subscribe, spawns an encoder through
// bus.Control and prints its typed events until it ends.
func TestConsumerDemo(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin("consumer-demo"), "--server", n.url, "--spawn", "--frames", "20")
	cmd.Env = programEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("consumer-demo: %v\n%s", err, out)
	}
	for _, want := range []string{"spawned   proc_", "progress  proc_", "100.0%  frame 20", "complete  proc_", "out.mp4", "encoder, exit code 0"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("consumer-demo output has no %q:\n%s", want, out)
		}
	}
}
