package node_test

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/client/wire"
	"github.com/corral-run/corral/internal/testchild"
	"github.com/corral-run/corral/node"
)

var encoderEvents = map[string]json.RawMessage{
	"progress": json.RawMessage(`{"type":"object","properties":{"percent":{"type":"number"},"fps":{"type":"number"}},"required":["percent"]}`),
	"complete": nil,
}

// line builds a child→node line for process id.
func line(id, typ, extra string) string {
	if extra != "" {
		extra = "," + extra
	}
	return fmt.Sprintf(`{"type":%q,"processId":%q,"timestamp":1738712345801%s}`, typ, id, extra)
}

func TestProtocolRelaysEventsAndAcks(t *testing.T) {
	for _, transport := range []string{"unix", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			h := newHarness(t, transport)
			msgs := make(chan wire.Message, 16)
			h.define(t, "encoder", h.ctrl.Env(), func(d *node.Definition) {
				d.Events = encoderEvents
				d.OnMessage = func(_ api.ManagedProcess, m wire.Message) { msgs <- m }
			})
			mp := h.spawn(t, "encoder", node.SpawnOptions{})
			peer := h.ctrl.Accept()
			if transport == "tcp" && peer.Address == "" {
				t.Fatal("no DONKEYLABS_TCP_PORT")
			}

			peer.Send(line(mp.ID, "connected", `"id":"c1"`))
			if got := peer.ReadLine(); got != `{"type":"ack","id":"c1"}` {
				t.Fatalf("ack of connected: %s", got)
			}
			h.rec.Wait(t, node.KindConnected, mp.ID)
			if m := <-msgs; m.Type != wire.TypeConnected {
				t.Errorf("OnMessage got %+v", m)
			}

			peer.Send(line(mp.ID, "event", `"event":"progress","data":{"percent":50,"fps":30},"id":7`))
			if got := peer.ReadLine(); got != `{"type":"ack","id":7}` {
				t.Fatalf("ack of event: %s", got)
			}
			ev := h.rec.Wait(t, node.KindEvent, mp.ID)
			want := fmt.Sprintf(`{"processId":%q,"name":"encoder","percent":50,"fps":30}`, mp.ID)
			if string(ev.Raw) != want || ev.Event != "progress" || ev.MsgID != mp.ID+":7" {
				t.Errorf("event report: raw=%s event=%s msgID=%s", ev.Raw, ev.Event, ev.MsgID)
			}

			// A line without id is relayed and not answered; the answer to
			// the next line (with id) proves nothing came in between.
			peer.Send(line(mp.ID, "heartbeat", ""))
			peer.Send(line(mp.ID, "event", `"event":"complete","id":"x"`))
			if got := peer.ReadLine(); got != `{"type":"ack","id":"x"}` {
				t.Fatalf("line without id was answered: %s", got)
			}
			h.rec.Wait(t, node.KindHeartbeat, mp.ID)
			if got, _ := h.sup.Get(mp.ID); got.LastHeartbeat == nil || !got.Connected {
				t.Errorf("heartbeat not recorded: %+v", got)
			}
			complete := h.rec.WaitFor(t, 10*time.Second, func(r node.Report) bool {
				return r.Kind == node.KindEvent && r.Event == "complete"
			})
			if string(complete.Raw) != fmt.Sprintf(`{"processId":%q,"name":"encoder"}`, mp.ID) {
				t.Errorf("event without data: %s", complete.Raw)
			}

			peer.Send(line(mp.ID, "stats", `"stats":{"cpu":{"user":1200,"system":300,"percent":0.03},"memory":{"rss":52428800,"heapTotal":3,"heapUsed":2,"external":1},"uptime":5.12},"id":8`))
			if got := peer.ReadLine(); got != `{"type":"ack","id":8}` {
				t.Fatalf("ack of stats: %s", got)
			}
			st := h.rec.WaitFor(t, 10*time.Second, func(r node.Report) bool {
				sr, ok := r.Payload.(api.StatsReport)
				return ok && r.ProcessID == mp.ID && sr.Source == "client"
			}).Payload.(api.StatsReport)
			if st.Source != "client" || st.Stats.Memory.RSS != 52428800 || st.Stats.CPU.Percent != 0.03 || st.Stats.Uptime != 5.12 {
				t.Errorf("stats report %+v", st)
			}

			// Node → child.
			if err := h.sup.Send(mp.ID, json.RawMessage(`{"type":"subscribe","channel":"live-scores"}`)); err != nil {
				t.Fatal(err)
			}
			if got := peer.ReadLine(); got != `{"type":"subscribe","channel":"live-scores"}` {
				t.Errorf("send: %s", got)
			}
		})
	}
}

func TestProtocolRejectsBadLines(t *testing.T) {
	h := newHarness(t, "unix")
	h.define(t, "encoder", h.ctrl.Env(), func(d *node.Definition) { d.Events = encoderEvents })
	mp := h.spawn(t, "encoder", node.SpawnOptions{})
	peer := h.ctrl.Accept()
	id := mp.ID
	// The first line with an id makes the connection ack-aware, so even
	// lines without a readable id get an error (with id null).
	peer.Send(line(id, "heartbeat", `"id":0`))
	if got := peer.ReadLine(); got != `{"type":"ack","id":0}` {
		t.Fatalf("first ack: %s", got)
	}

	for _, tc := range []struct {
		name, line, code, text string
	}{
		{"malformed JSON", `{"type":"event","id":1,`, "", ""}, // no readable id: answered below with null id
		{"not an object", `[1,2,3]`, "", ""},
		{"missing type", fmt.Sprintf(`{"processId":%q,"timestamp":1,"id":2}`, id), wire.CodeMissingField, `no "type"`},
		{"missing processId", `{"type":"heartbeat","timestamp":1,"id":3}`, wire.CodeMissingField, `no "processId"`},
		{"missing timestamp", fmt.Sprintf(`{"type":"heartbeat","processId":%q,"id":4}`, id), wire.CodeMissingField, `"timestamp"`},
		{"timestamp not a number", fmt.Sprintf(`{"type":"heartbeat","processId":%q,"timestamp":"now","id":5}`, id), wire.CodeMalformed, `"timestamp"`},
		{"spoofed processId", line("proc_someoneelse00000", "heartbeat", `"id":6`), wire.CodeWrongProcess, "does not match"},
		{"unknown type", line(id, "shout", `"id":7`), wire.CodeUnknownType, `unknown message type "shout"`},
		{"unknown event", line(id, "event", `"event":"explode","data":{},"id":8`), wire.CodeUnknownEvent, `event "explode" is not defined for "encoder" (defined: complete, progress)`},
		{"schema-invalid data", line(id, "event", `"event":"progress","data":{"percent":"half"},"id":9`), wire.CodeSchemaInvalid, "percent"},
		{"missing required", line(id, "event", `"event":"progress","data":{"fps":3},"id":10`), wire.CodeSchemaInvalid, "percent"},
		{"data not an object", line(id, "event", `"event":"complete","data":[1],"id":11`), wire.CodeMalformed, `"data" must be an object, got an array`},
		{"reserved data key", line(id, "event", `"event":"complete","data":{"processId":"x"},"id":12`), wire.CodeInvalidEvent, `may not use the key "processId"`},
		{"escaped reserved key", line(id, "event", `"event":"complete","data":{"n\u0061me":"x"},"id":13`), wire.CodeInvalidEvent, `may not use the key "name"`},
		{"event name not a token", line(id, "event", `"event":"a.b","id":14`), wire.CodeInvalidEvent, `event name "a.b"`},
		{"reserved event name", line(id, "event", `"event":"stats","id":15`), wire.CodeInvalidEvent, "reserved"},
		{"event without name", line(id, "event", `"id":16`), wire.CodeMissingField, `no "event"`},
		{"stats without stats", line(id, "stats", `"id":17`), wire.CodeMissingField, `no "stats"`},
		{"id of the wrong type", line(id, "heartbeat", `"id":{"a":1}`), wire.CodeMalformed, "id must be a string or a number"},
		{"line too long", line(id, "event", `"event":"complete","data":{"pad":"`+strings.Repeat("x", 5000)+`"},"id":18`), wire.CodeLineTooLong, "exceeds the limit of 4096 bytes"},
	} {
		peer.Send(tc.line)
		got := peer.ReadLine()
		var reply wire.Reply
		if err := json.Unmarshal([]byte(got), &reply); err != nil || reply.Type != wire.TypeError {
			t.Errorf("%s: reply %s", tc.name, got)
			continue
		}
		if tc.code != "" && (reply.Code != tc.code || !strings.Contains(reply.Message, tc.text)) {
			t.Errorf("%s: reply %s, want code %s mentioning %q", tc.name, got, tc.code, tc.text)
		}
	}
	// None of it was relayed, and the connection still works.
	if n := h.rec.Count(node.KindEvent, id); n != 0 {
		t.Errorf("%d rejected events were relayed", n)
	}
	peer.Send(line(id, "event", `"event":"progress","data":{"percent":1},"id":"after"`))
	if got := peer.ReadLine(); got != `{"type":"ack","id":"after"}` {
		t.Errorf("connection broken after bad lines: %s", got)
	}
}

func TestProtocolStaysSilentForClientsWithoutIDs(t *testing.T) {
	h := newHarness(t, "unix")
	h.define(t, "plain", h.ctrl.Env(), nil)
	mp := h.spawn(t, "plain", node.SpawnOptions{})
	peer := h.ctrl.Accept()
	peer.Send(`not json at all`)
	peer.Send(line(mp.ID, "event", `"event":"a.b"`))
	peer.Send(line(mp.ID, "event", `"event":"fine","data":{"n":1}`))
	// The valid event is relayed after the bad lines were dropped...
	ev := h.rec.Wait(t, node.KindEvent, mp.ID)
	if ev.Event != "fine" {
		t.Errorf("relayed %s", ev.Event)
	}
	// ...and the child, which never asked for answers, got none.
	peer.NoLine(100 * time.Millisecond)
}

func TestBadChildDoesNotDisturbOthers(t *testing.T) {
	h := newHarness(t, "unix")
	h.define(t, "w", h.ctrl.Env(), nil)
	bad := h.spawn(t, "w", node.SpawnOptions{})
	badPeer := h.ctrl.Accept()
	good := h.spawn(t, "w", node.SpawnOptions{})
	goodPeer := h.ctrl.Accept()
	if badPeer.ProcessID != bad.ID {
		badPeer, goodPeer = goodPeer, badPeer
	}
	// A line far over the limit, with no newline for a while, then garbage.
	badPeer.Send(strings.Repeat("x", 200_000))
	badPeer.Send(`{"broken":`)
	goodPeer.Send(line(good.ID, "event", `"event":"ok","data":{},"id":1`))
	if got := goodPeer.ReadLine(); got != `{"type":"ack","id":1}` {
		t.Fatalf("good child: %s", got)
	}
	badPeer.Send(line(bad.ID, "event", `"event":"ok","id":2`))
	if got := badPeer.ReadLine(); got != `{"type":"ack","id":2}` {
		t.Fatalf("bad child after garbage: %s", got)
	}
}

func TestSendWithoutConnectionIsAConflict(t *testing.T) {
	h := newHarness(t, "unix")
	h.define(t, "sleeper", role(testchild.RoleSleep), nil)
	mp := h.spawn(t, "sleeper", node.SpawnOptions{})
	err := h.sup.Send(mp.ID, json.RawMessage(`{"a":1}`))
	if err == nil || !strings.Contains(err.Error(), "no open connection") {
		t.Errorf("send without connection: %v", err)
	}
}

func TestEventNotHandedOnIsReportedToTheChild(t *testing.T) {
	h := newHarness(t, "unix")
	h.define(t, "w", h.ctrl.Env(), nil)
	mp := h.spawn(t, "w", node.SpawnOptions{})
	peer := h.ctrl.Accept()
	h.rec.Fail(fmt.Errorf("nats: outbound buffer limit exceeded"))
	peer.Send(line(mp.ID, "event", `"event":"e","id":1`))
	got := peer.ReadLine()
	if !strings.Contains(got, `"code":"unavailable"`) || !strings.Contains(got, "outbound buffer limit exceeded") {
		t.Errorf("reply %s", got)
	}
}

func TestConnectionsPerSocketAreBounded(t *testing.T) {
	h := newHarness(t, "unix")
	env := h.ctrl.Env()
	env[testchild.EnvRole], env[envConns] = roleConns, "9"
	h.define(t, "many", env, nil)
	mp := h.spawn(t, "many", node.SpawnOptions{})
	// Eight connections of the child's are accepted and answered...
	var peers []*testchild.Peer
	for i := 0; i < 8; i++ {
		peer := h.ctrl.Accept()
		peers = append(peers, peer)
		peer.Send(line(mp.ID, "heartbeat", fmt.Sprintf(`"id":%d`, i)))
		if got := peer.ReadLine(); !strings.Contains(got, `"ack"`) {
			t.Fatalf("connection %d: %q", i, got)
		}
	}
	// ...a ninth is closed at once, as all eight have spoken, and the
	// others keep working.
	extra := h.ctrl.Accept()
	if b, err := io.ReadAll(extra); err != nil || len(b) != 0 {
		t.Errorf("ninth connection: %q %v, want it closed", b, err)
	}
	peers[0].Send(line(mp.ID, "heartbeat", `"id":"again"`))
	if got := peers[0].ReadLine(); !strings.Contains(got, `"again"`) {
		t.Errorf("first connection after the refusal: %q", got)
	}
}
