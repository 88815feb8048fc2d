package service_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/micro"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus"
	"github.com/corral-run/corral/bus/control"
	"github.com/corral-run/corral/bus/embedded"
	"github.com/corral-run/corral/internal/await"
	"github.com/corral-run/corral/internal/testnode"
	"github.com/corral-run/corral/node"
)

// A log larger than the server's max_payload is answered with its newest
// lines, as many as fit, and says it was cut (truncated): never a reply
// the server refuses, which the caller would see as a timeout. The tail of
// a follow fits the same way. A last line that does not fit alone is
// answered with its end.
func TestLogsReplyFitsMaxPayload(t *testing.T) {
	const maxPayload = 8 << 10
	// 2000 lines of about 40 bytes (80 KB), with characters JSON escapes
	// (<, > and & take six bytes each), then "done".
	many := node.Definition{Name: "many", Command: "sh", StopTimeout: time.Second,
		Args: []string{"-c", `i=0; while [ $i -lt 2000 ]; do echo "line $i <&> \"quoted\" tab	end"; i=$((i+1)); done; echo done; exec sleep 30`}}
	// A last line of 20000 bytes: more than a reply holds.
	long := node.Definition{Name: "long", Command: "sh", StopTimeout: time.Second,
		Args: []string{"-c", `echo before; head -c 20000 /dev/zero | tr '\0' x; echo; exec sleep 30`}}
	srv := testnode.StartServerWith(t, embedded.Config{MaxPayload: maxPayload})
	n := testnode.Start(t, srv, testnode.Spec{ID: "n1", Definitions: []node.Definition{many, long}})
	ctx := testnode.Context(t)
	nc := testnode.Connect(t, n.URL)

	logs := func(id string, lines int) (api.LogsReply, int) {
		t.Helper()
		m, err := nc.RequestWithContext(ctx, bus.ProcSubject(id, bus.VerbLogs), fmt.Appendf(nil, `{"lines":%d}`, lines))
		if err != nil {
			t.Fatalf("logs of %s: %v (the node's reply did not fit max_payload?)", id, err)
		}
		if desc := m.Header.Get(micro.ErrorHeader); desc != "" {
			t.Fatalf("logs of %s: %s %s", id, m.Header.Get(micro.ErrorCodeHeader), desc)
		}
		var r api.LogsReply
		if err := json.Unmarshal(m.Data, &r); err != nil {
			t.Fatal(err)
		}
		return r, len(m.Data)
	}
	waitDone := func(id string) {
		t.Helper()
		await.Until(t, 10*time.Second, "done in the log of "+id, func() bool {
			snap, err := n.Sup.Tail(ctx, id, node.TailOptions{Lines: 1})
			return err == nil && snap.Tail == "done\n"
		})
	}

	mp := testnode.Spawn(t, n, "many")
	waitDone(mp.ID)
	r, size := logs(mp.ID, 3000)
	if size > maxPayload {
		t.Errorf("a reply of %d bytes, max_payload is %d", size, maxPayload)
	}
	if !r.Truncated || !strings.HasSuffix(r.Log, "line 1999 <&> \"quoted\" tab\tend\ndone\n") || !strings.HasPrefix(r.Log, "line ") {
		t.Errorf("truncated %v, a log of %d bytes from %.40q to %.40q; want the newest whole lines, truncated", r.Truncated, len(r.Log), r.Log, r.Log[max(len(r.Log)-40, 0):])
	}
	if k := strings.Count(r.Log, "\n"); k < 50 {
		t.Errorf("only %d lines fit in %d bytes", k, maxPayload)
	}
	// What fits is answered as it is.
	if r, _ := logs(mp.ID, 3); r.Truncated || r.Log != "line 1998 <&> \"quoted\" tab\tend\nline 1999 <&> \"quoted\" tab\tend\ndone\n" {
		t.Errorf("three lines: truncated %v, %q", r.Truncated, r.Log)
	}
	// Control reads it too (it would time out on a reply never sent), and
	// says it was cut.
	if r, err := n.Ctl.Logs(ctx, mp.ID, 3000); err != nil || !strings.HasSuffix(r.Log, "done\n") || !r.Truncated {
		t.Errorf("Control.Logs: %d bytes, truncated %v, %v", len(r.Log), r.Truncated, err)
	}

	// The tail of a follow fits the same way.
	errStop := errors.New("had the tail")
	var tail control.Output
	_, err := n.Ctl.Follow(ctx, mp.ID, control.FollowOptions{Tail: 3000}, func(o control.Output) error {
		tail = o
		return errStop
	})
	if !errors.Is(err, errStop) || !tail.Tail || !tail.Truncated || !strings.HasSuffix(string(tail.Data), "tab\tend\ndone\n") || !strings.HasPrefix(string(tail.Data), "line ") {
		t.Errorf("the tail of a follow: %v, tail %v truncated %v, %d bytes", err, tail.Tail, tail.Truncated, len(tail.Data))
	}

	lp := testnode.Spawn(t, n, "long")
	await.Until(t, 10*time.Second, "the long line in the log", func() bool {
		snap, err := n.Sup.Tail(ctx, lp.ID, node.TailOptions{Lines: 1})
		return err == nil && len(snap.Tail) == 20001
	})
	r, size = logs(lp.ID, 10)
	if size > maxPayload || !r.Truncated || len(r.Log) < 1000 || r.Log != strings.Repeat("x", len(r.Log)-1)+"\n" {
		t.Errorf("a line longer than a reply: %d bytes, truncated %v, %.40q", size, r.Truncated, r.Log)
	}
}
