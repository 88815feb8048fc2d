package relay_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus"
	"github.com/corral-run/corral/bus/relay"
	"github.com/corral-run/corral/internal/testnode"
	"github.com/corral-run/corral/node"
)

// Every report becomes a message on its subject with the Corral headers
// and a Nats-Msg-Id of its own (the child's where it gave one), however
// many go through the relay.
func TestMessagesCarryHeadersAndDistinctIDs(t *testing.T) {
	srv := testnode.StartServer(t, false)
	nc := testnode.Connect(t, srv.ClientURL())
	sub := testnode.Connect(t, srv.ClientURL())
	msgs := make(chan *nats.Msg, 4096)
	if _, err := sub.ChanSubscribe(bus.SubjectAll, msgs); err != nil {
		t.Fatal(err)
	}
	if err := sub.Flush(); err != nil {
		t.Fatal(err)
	}
	r := testnode.NewRelay(t, nc, relay.Config{NodeID: "n1"})
	raw := []byte(`{"processId":"proc_a","name":"enc","n":1}`)
	const n = 1000 // more than the ids made at a time
	for i := range n {
		rep := node.Report{Kind: node.KindEvent, ProcessID: "proc_a", Name: "enc", Event: "progress", Raw: raw}
		if i%2 == 1 {
			rep.Kind, rep.Event = node.KindHeartbeat, ""
		}
		if err := r.Publish(rep); err != nil {
			t.Fatal(err)
		}
	}
	stats := node.Report{Kind: node.KindStats, ProcessID: "proc_b", Name: "other",
		Payload: api.StatsReport{ProcessID: "proc_b", Name: "other", Source: "node"}}
	if err := r.Publish(stats); err != nil {
		t.Fatal(err)
	}
	if err := r.Publish(node.Report{Kind: node.KindEvent, ProcessID: "proc_a", Name: "enc", Event: "done", MsgID: "proc_a:7", Raw: raw}); err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	ctx := testnode.Context(t)
	for i := range n + 3 {
		var m *nats.Msg
		select {
		case m = <-msgs:
		case <-ctx.Done():
			t.Fatalf("%d of %d messages arrived", i, n+3)
		}
		want := map[int]string{n: "process.other.stats", n + 1: bus.SubjectStats, n + 2: "process.enc.done"}[i]
		switch {
		case want != "":
		case i%2 == 0:
			want = "process.enc.progress"
		default:
			want = bus.SubjectHeartbeat
		}
		id := m.Header.Get(bus.HeaderMsgID)
		pid, name := "proc_a", "enc"
		if i == n || i == n+1 {
			pid, name = "proc_b", "other"
		}
		if m.Subject != want || m.Header.Get(bus.HeaderNode) != "n1" || m.Header.Get(bus.HeaderProcessID) != pid ||
			m.Header.Get(bus.HeaderProcessName) != name || id == "" || ids[id] {
			t.Fatalf("message %d: %s %v, want %s with the headers of %s and a new id", i, m.Subject, m.Header, want, pid)
		}
		ids[id] = true
		if i == n+2 && id != "proc_a:7" {
			t.Errorf("Nats-Msg-Id %q, want the child's proc_a:7", id)
		}
	}
}

// Relaying an event allocates nothing beyond what nats.go allocates to
// publish a message with the same headers. (The server is a sink of this
// test's, which allocates nothing per message: a real one allocates, in
// this process, at its own pace.) Counts of allocations mean nothing under
// the race detector: `make test` runs this test once more without it.
func TestPublishAllocatesNothingOfItsOwn(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector drops pooled messages at random; `make test` runs this test without it")
	}
	nc := testnode.Connect(t, sinkServer(t))
	r := testnode.NewRelay(t, nc, relay.Config{NodeID: "n1"})
	raw := []byte(`{"processId":"proc_a","name":"enc","percent":50}`)
	rep := node.Report{Kind: node.KindEvent, ProcessID: "proc_a", Name: "enc", Event: "progress", Raw: raw}
	if err := r.Publish(rep); err != nil {
		t.Fatal(err)
	}
	relayed := testing.AllocsPerRun(1000, func() { _ = r.Publish(rep) })
	h := nats.Header{bus.HeaderNode: {"n1"}, bus.HeaderProcessID: {"proc_a"}, bus.HeaderProcessName: {"enc"}, bus.HeaderMsgID: {"0123456789abcdefghijkl"}}
	m := &nats.Msg{Subject: "process.enc.progress", Header: h, Data: raw}
	bare := testing.AllocsPerRun(1000, func() { _ = nc.PublishMsg(m) })
	if relayed > bare {
		t.Errorf("Publish allocates %v times per event, nats.go alone %v", relayed, bare)
	}
}

// sinkServer is enough of a NATS server for a client to publish to: it
// greets, answers pings and drops everything else. It returns its URL.
func sinkServer(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.WriteString(c, `INFO {"server_id":"sink","version":"2.15.2","proto":1,"headers":true,"max_payload":1048576}`+"\r\n")
				r := bufio.NewReaderSize(c, 64<<10)
				for {
					line, err := r.ReadSlice('\n')
					if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
						return
					}
					if bytes.HasPrefix(line, []byte("PING")) {
						if _, err := io.WriteString(c, "PONG\r\n"); err != nil {
							return
						}
					}
				}
			}()
		}
	}()
	return "nats://" + l.Addr().String()
}

func BenchmarkPublish(b *testing.B) {
	srv := testnode.StartServer(b, false)
	r := testnode.NewRelay(b, testnode.Connect(b, srv.ClientURL()), relay.Config{NodeID: "n1"})
	raw := []byte(`{"processId":"proc_y1lh8i24ssmypvha","name":"relay","k":"00000012","pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`)
	rep := node.Report{Kind: node.KindEvent, ProcessID: "proc_y1lh8i24ssmypvha", Name: "relay", Event: "progress", Raw: raw}
	b.ReportAllocs()
	for b.Loop() {
		if err := r.Publish(rep); err != nil {
			b.Fatal(err)
		}
	}
}
