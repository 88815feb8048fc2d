package node_test

import (
	"strings"
	"testing"
	"time"

	"github.com/corral-run/corral/client/wire"
	"github.com/corral-run/corral/internal/await"
	"github.com/corral-run/corral/node"
)

// The node counts what it answers its children's lines, by wire code, and
// the connections open on its sockets.
func TestLineStatsAndConnections(t *testing.T) {
	h := newHarness(t, "unix")
	h.define(t, "encoder", h.ctrl.Env(), func(d *node.Definition) { d.Events = encoderEvents })
	mp := h.spawn(t, "encoder", node.SpawnOptions{})
	before := h.sup.LineStats()
	if len(before.Rejected) != 10 {
		t.Errorf("Rejected lists %d codes, want every one of the 10", len(before.Rejected))
	}
	peer := h.ctrl.Accept()
	await.Until(t, 10*time.Second, "one connection", func() bool { return h.sup.Connections() == 1 })

	peer.Send(line(mp.ID, "event", `"event":"progress","data":{"percent":50},"id":1`))
	if got := peer.ReadLine(); got != `{"type":"ack","id":1}` {
		t.Fatalf("ack: %s", got)
	}
	peer.Send(line(mp.ID, "event", `"event":"progress","data":{"percent":"half"},"id":2`))
	if got := peer.ReadLine(); !strings.Contains(got, wire.CodeSchemaInvalid) {
		t.Fatalf("answer to a schema-invalid event: %s", got)
	}
	peer.Send(`{not json`)
	peer.Send(line("proc_someoneelse000", "heartbeat", `"id":3`))
	if got := peer.ReadLine(); !strings.Contains(got, wire.CodeMalformed) {
		t.Fatalf("answer to a malformed line: %s", got)
	}
	if got := peer.ReadLine(); !strings.Contains(got, wire.CodeWrongProcess) {
		t.Fatalf("answer to a line of another process: %s", got)
	}
	after := h.sup.LineStats()
	if after.Acked-before.Acked != 1 {
		t.Errorf("acked %d events, want 1", after.Acked-before.Acked)
	}
	for code, want := range map[string]uint64{wire.CodeSchemaInvalid: 1, wire.CodeMalformed: 1, wire.CodeWrongProcess: 1, wire.CodeLineTooLong: 0} {
		if got := after.Rejected[code] - before.Rejected[code]; got != want {
			t.Errorf("rejected %s: %d, want %d", code, got, want)
		}
	}
	peer.Close()
	await.Until(t, 10*time.Second, "no connection", func() bool { return h.sup.Connections() == 0 })
}
