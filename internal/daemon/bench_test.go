package daemon_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"slices"
	"sort"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus"
	"github.com/corral-run/corral/bus/control"
	"github.com/corral-run/corral/internal/daemon"
	"github.com/corral-run/corral/internal/testcert"
	"github.com/corral-run/corral/internal/testchild"
	"github.com/corral-run/corral/internal/testnode"
)

// benchNode starts a quiet node with a "sleeper" definition (sleep 600)
// and a "relay" one (this binary as an emitter child, which writes events
// as the benchmark commands), without JetStream.
func benchNode(b *testing.B) (*daemon.Daemon, *nats.Conn) { return benchNodeWith(b, false, false) }

// benchNodeWith starts the bench node, with JetStream (durable events, the
// default) or without, and secure or not: with secure, the embedded server
// has users and TLS, and the benchmark's client is an operator over TLS
// with a CA made for the run.
func benchNodeWith(b *testing.B, jetstream, secure bool) (*daemon.Daemon, *nats.Conn) {
	d, nc, _ := benchNodeOpts(b, jetstream, secure)
	return d, nc
}

// benchNodeOpts is benchNodeWith, and also returns the options the raw
// NATS clients of the benchmark connect with (secure: a user of role node,
// which may publish and subscribe on corral.>).
func benchNodeOpts(b *testing.B, jetstream, secure bool) (*daemon.Daemon, *nats.Conn, []nats.Option) {
	b.Helper()
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	dir := testchild.ShortTempDir(b)
	toml := fmt.Sprintf(`
[node]
id = "bench"
data_dir = %q
[nats]
listen = "127.0.0.1:0"
jetstream = %t
[processes.sleeper]
command = "sleep"
args = ["600"]
heartbeat_timeout = "0s"
stop_timeout = "1s"
[processes.relay]
command = %q
heartbeat_timeout = "0s"
stop_timeout = "1s"
[processes.relay.env]
%s = %q
%s = %q
`, dir, jetstream, exe, testchild.EnvRole, testchild.RoleEmitter, testchild.EnvCtrl, benchCtrl(b).Env()[testchild.EnvCtrl])
	if testchild.MinimalChildRuns() {
		minimal, err := testchild.WriteMinimalChild(dir)
		if err != nil {
			b.Fatal(err)
		}
		toml += minimalDefinition(minimal)
	}
	var opts, rawOpts []nats.Option
	if secure {
		ca := testcert.New(b)
		cert, key := ca.Issue(b, "bench")
		toml += fmt.Sprintf(`
[[nats.users]]
user = "ops"
password = "bench-secret"
role = "operator"
[[nats.users]]
user = "raw"
password = "bench-secret"
role = "node"
[nats.tls]
cert = %q
key = %q
`, cert, key)
		opts = append(opts, nats.UserInfo("ops", "bench-secret"), nats.RootCAs(ca.Cert), nats.CustomInboxPrefix(bus.InboxPrefix("ops")))
		rawOpts = append(rawOpts, nats.UserInfo("raw", "bench-secret"), nats.RootCAs(ca.Cert))
	}
	d := startDaemon(b, parseConfig(b, toml), quiet)
	nc, err := nats.Connect(d.ClientURL(), opts...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	return d, nc, rawOpts
}

// minimalDefinition defines "minimal", the minimal child at path
// (testchild.WriteMinimalChild), in a node's configuration.
func minimalDefinition(path string) string {
	return fmt.Sprintf(`
[processes.minimal]
command = %q
heartbeat_timeout = "0s"
stop_timeout = "1s"
`, path)
}

// benchCtrls are the control sockets of the bench nodes' children.
var benchCtrls = map[testing.TB]*testchild.Ctrl{}

// benchCtrl is b's control socket for emitter children.
func benchCtrl(b *testing.B) *testchild.Ctrl {
	if c := benchCtrls[b]; c != nil {
		return c
	}
	c := testchild.NewCtrl(b)
	benchCtrls[b] = c
	b.Cleanup(func() { delete(benchCtrls, b) })
	return c
}

// Shape of the relay benchmarks (the figures of issue 14): four children,
// events whose payload on NATS is 128 bytes (testchild.EmitterPayload),
// and at most 256 events in flight per child when each waits for its acks.
const (
	benchChildren  = 4
	benchAckWindow = 256
)

// spawnEmitters spawns n emitter children ("relay") and returns their
// control connections.
func spawnEmitters(b *testing.B, nc *nats.Conn, n int) []*testchild.Peer {
	b.Helper()
	peers := make([]*testchild.Peer, n)
	for i := range peers {
		if _, err := control.New(nc).Spawn(context.Background(), "", "relay", api.SpawnRequest{}); err != nil {
			b.Fatal(err)
		}
		peers[i] = benchCtrl(b).Accept()
	}
	return peers
}

// BenchmarkRelay measures child → node → NATS subscriber throughput: four
// emitter children write event lines as fast as the node takes them, and a
// separate NATS client counts what arrives on NATS. With acks each child
// keeps at most benchAckWindow events unanswered; in the durable cases
// (JetStream on, the default) an ack comes once the stream stored the
// event, and the case also measures raw JetStream: one publisher storing
// as many messages of the same size, with a Nats-Msg-Id each, at most as
// many unacknowledged as the children together. cpu-µs/event is the CPU time of this process (the node, its
// NATS server and the subscriber; not the children) per event: less
// sensitive than the rate to whatever else runs on the machine. Each case
// first measures raw NATS on the same server (the same
// number of messages, one publisher and one subscriber, payloads of the
// same size) and reports both and their ratio: the machine is shared, so
// only figures of the same run compare.
func BenchmarkRelay(b *testing.B) {
	for _, bc := range []struct {
		name                      string
		withAcks, durable, secure bool
	}{
		{"fire-and-forget", false, false, false}, {"acked", true, false, false}, {"durable-acked", true, true, false},
		{"fire-and-forget-tls-users", false, false, true}, {"durable-acked-tls-users", true, true, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			d, nc, rawOpts := benchNodeOpts(b, bc.durable, bc.secure)
			if bc.durable && !nodeDurable(b, nc) {
				b.Fatal("the node is not durable")
			}
			raw := rawPubSub(b, d.ClientURL(), rawOpts, testchild.EmitterPayload, b.N, nil)
			rawHeaders := rawPubSub(b, d.ClientURL(), rawOpts, testchild.EmitterPayload, b.N, corralHeaders("proc_0123456789abcdef"))
			rawJS := 0.0
			if bc.durable {
				rawJS = rawJetStream(b, d.ClientURL(), rawOpts, testchild.EmitterPayload, b.N, benchChildren*benchAckWindow)
			}
			// The children are spawned once raw NATS is measured: a
			// connection that sends no line for 5 s is closed (the
			// handshake timeout), and the measurements of a large b.N take
			// longer.
			peers := spawnEmitters(b, nc, benchChildren)
			var got atomic.Int64
			done := make(chan struct{})
			target := int64(b.N)
			sub, err := nc.Subscribe("process.relay.progress", func(*nats.Msg) {
				if got.Add(1) == target {
					close(done)
				}
			})
			if err != nil {
				b.Fatal(err)
			}
			_ = sub.SetPendingLimits(-1, -1)
			_ = nc.Flush()
			window := 0
			if bc.withAcks {
				window = benchAckWindow
			}
			b.ResetTimer()
			start, cpu0 := time.Now(), cpuTime()
			for i, p := range peers {
				n := b.N/benchChildren + btoi(i < b.N%benchChildren)
				p.Send(fmt.Sprintf("flood %d progress %d", n, window))
			}
			for _, p := range peers {
				if answer := p.ReadLineWithin(2 * time.Minute); answer != "done" {
					b.Fatalf("emitter: %s", answer)
				}
			}
			select {
			case <-done:
			case <-time.After(2 * time.Minute):
				b.Fatalf("received %d of %d events", got.Load(), b.N)
			}
			elapsed, cpu := time.Since(start), cpuTime()-cpu0
			b.StopTimer()
			relayRate := float64(b.N) / elapsed.Seconds()
			b.ReportMetric(relayRate, "events/s")
			b.ReportMetric(float64(cpu.Nanoseconds())/1000/float64(b.N), "cpu-µs/event")
			b.ReportMetric(raw, "raw-NATS-msg/s")
			b.ReportMetric(100*relayRate/raw, "%-of-raw")
			b.ReportMetric(rawHeaders, "raw-NATS-with-headers-msg/s")
			if bc.durable {
				b.ReportMetric(rawJS, "raw-JetStream-msg/s")
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// corralHeaders are headers like those of a relayed event (DESIGN.md:
// Corral-Node, Corral-Process-Id, Corral-Process-Name, Nats-Msg-Id).
func corralHeaders(processID string) nats.Header {
	return nats.Header{bus.HeaderNode: {"bench"}, bus.HeaderProcessID: {processID}, bus.HeaderProcessName: {"relay"},
		bus.HeaderMsgID: {"k6pRhxBvLqFz000000000a"}}
}

// rawSubject is where the raw NATS measurements publish: no stream keeps
// it.
const rawSubject = "corral.bench.raw"

// rawPubSub measures raw NATS on the server at url: a publisher publishes
// n messages of size bytes on one subject, with header h (none when nil),
// and a subscriber (a connection of its own, like the relay benchmark's)
// counts them as they arrive. It returns messages per second, first
// publish to last receipt.
func rawPubSub(b *testing.B, url string, opts []nats.Option, size, n int, h nats.Header) float64 {
	b.Helper()
	pub, sub := testnode.Connect(b, url, opts...), testnode.Connect(b, url, opts...)
	var got atomic.Int64
	done := make(chan struct{})
	s, err := sub.Subscribe(rawSubject, func(*nats.Msg) {
		if got.Add(1) == int64(n) {
			close(done)
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Unsubscribe()
	_ = s.SetPendingLimits(-1, -1)
	if err := sub.Flush(); err != nil {
		b.Fatal(err)
	}
	m := &nats.Msg{Subject: rawSubject, Data: bytes.Repeat([]byte("x"), size), Header: h}
	start := time.Now()
	for range n {
		if err := pub.PublishMsg(m); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		b.Fatalf("raw NATS: received %d of %d", got.Load(), n)
	}
	return float64(n) / time.Since(start).Seconds()
}

// rawJetStream measures raw JetStream on the server at url: one publisher
// stores n messages of size bytes, each with a Nats-Msg-Id, in a file
// stream of its own (as the event stream is), with at most window
// waiting for their PubAck. It returns messages per second, first publish
// to last PubAck.
func rawJetStream(b *testing.B, url string, opts []nats.Option, size, n, window int) float64 {
	b.Helper()
	js, err := jetstream.New(testnode.Connect(b, url, opts...), jetstream.WithPublishAsyncMaxPending(window))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "BENCH_RAW", Subjects: []string{rawSubject + ".js"},
		Storage: jetstream.FileStorage, Duplicates: bus.DuplicateWindow}); err != nil {
		b.Fatal(err)
	}
	defer js.DeleteStream(ctx, "BENCH_RAW")
	payload := bytes.Repeat([]byte("x"), size)
	prefix := nuid.Next() + "-"
	start := time.Now()
	for i := range n {
		if _, err := js.PublishAsync(rawSubject+".js", payload, jetstream.WithMsgID(prefix+strconv.Itoa(i))); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(2 * time.Minute):
		b.Fatalf("raw JetStream: %d of %d not acknowledged", js.PublishAsyncPending(), n)
	}
	return float64(n) / time.Since(start).Seconds()
}

// nodeDurable asks the node whether its acks wait for storage.
func nodeDurable(b *testing.B, nc *nats.Conn) bool {
	nodes, err := control.New(nc).Nodes(context.Background())
	if err != nil || len(nodes) != 1 {
		b.Fatalf("nodes: %v %v", nodes, err)
	}
	return nodes[0].Durable
}

// latencyRate is the pace of the latency benchmark: 10 k events a second,
// 10 every millisecond (the rate without a spinning sender stealing one of
// the two cores).
const latencyRate = 10_000

// BenchmarkRelayLatency has one emitter child write events at 10 k/s, each
// carrying its send time, and reports the child-write to
// subscriber-receive latency percentiles; then the same for raw NATS
// (publish to receipt, payloads of the same size, same pace) on the same
// server.
func BenchmarkRelayLatency(b *testing.B) {
	d, nc := benchNode(b)
	p := spawnEmitters(b, nc, 1)[0]
	n := max(b.N, 20_000)
	b.ResetTimer()
	relay := latencies(b, nc, "process.relay.tick", n, func() {
		p.Send(fmt.Sprintf("paced %d tick %d", n, latencyRate))
		if answer := p.ReadLine(); answer != "done" {
			b.Fatalf("emitter: %s", answer)
		}
	})
	b.StopTimer()
	pub := testnode.Connect(b, d.ClientURL())
	raw := latencies(b, nc, rawSubject, n, func() {
		payload := bytes.Repeat([]byte("x"), testchild.EmitterPayload)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for i := 0; i < n; {
			<-tick.C
			for j := 0; j < latencyRate/1000 && i < n; j, i = j+1, i+1 {
				copy(payload[5:], fmt.Appendf(payload[5:5], `"t":"%019d"`, time.Now().UnixNano()))
				if err := pub.Publish(rawSubject, payload); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.ReportMetric(pct(relay, 0.50), "p50-µs")
	b.ReportMetric(pct(relay, 0.99), "p99-µs")
	b.ReportMetric(pct(relay, 0.999), "p99.9-µs")
	b.ReportMetric(pct(raw, 0.50), "raw-p50-µs")
	b.ReportMetric(pct(raw, 0.99), "raw-p99-µs")
}

// latencies subscribes to subject, runs send (which publishes n messages
// whose payloads carry their send time, see testchild.EmitterSentAt),
// waits for them and returns their latencies, sorted.
func latencies(b *testing.B, nc *nats.Conn, subject string, n int, send func()) []time.Duration {
	b.Helper()
	lat := make([]time.Duration, 0, n)
	done := make(chan struct{})
	var bad atomic.Int64
	sub, err := nc.Subscribe(subject, func(m *nats.Msg) {
		at, ok := testchild.EmitterSentAt(m.Data)
		if !ok {
			bad.Add(1)
		}
		lat = append(lat, time.Since(at))
		if len(lat) == n {
			close(done)
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Unsubscribe()
	_ = nc.Flush()
	send()
	select {
	case <-done:
	case <-time.After(time.Minute):
		b.Fatalf("%s: messages missing", subject)
	}
	if bad.Load() > 0 {
		b.Fatalf("%s: %d messages without a send time", subject, bad.Load())
	}
	slices.Sort(lat)
	return lat
}

// pct is the p quantile of sorted latencies, in µs.
func pct(sorted []time.Duration, p float64) float64 {
	return float64(sorted[int(p*float64(len(sorted)-1))].Nanoseconds()) / 1000
}

// BenchmarkSpawn measures spawn over NATS (request to reply, child
// started), one at a time; the children are stopped outside the timer.
// cpu-µs/spawn is the CPU time of this process (the node, its NATS server
// and the requester; not the children) per spawn: steadier than the
// latency on a shared machine. The children are sleep(1), but in
// minimal-child (amd64): testchild.WriteMinimalChild, whose start-up
// takes next to nothing of the CPU the node shares with it.
func BenchmarkSpawn(b *testing.B) {
	b.Run("plain", func(b *testing.B) { benchSpawn(b, "sleeper", false) })
	b.Run("tls-users", func(b *testing.B) { benchSpawn(b, "sleeper", true) })
	b.Run("minimal-child", func(b *testing.B) {
		if !testchild.MinimalChildRuns() {
			b.Skip("the minimal child runs on linux/amd64 only") // the node has no such definition
		}
		benchSpawn(b, "minimal", false)
	})
}

func benchSpawn(b *testing.B, name string, secure bool) {
	_, nc := benchNodeWith(b, false, secure)
	ctl := control.New(nc)
	ctx := context.Background()
	durs := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if _, err := ctl.Spawn(ctx, "", name, api.SpawnRequest{}); err != nil {
			b.Fatal(err)
		}
		durs = append(durs, time.Since(t0))
	}
	total, cpu := time.Since(start), cpuTime()-cpu0
	b.StopTimer()
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/spawn")
	sort.Slice(durs, func(i, j int) bool { return durs[i] < durs[j] })
	b.ReportMetric(float64(durs[len(durs)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(durs[len(durs)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(total.Seconds()/float64(b.N)*100, "s/100-spawns")
	if _, err := ctl.StopAll(ctx, name, "SIGKILL"); err != nil {
		b.Fatal(err)
	}
}
