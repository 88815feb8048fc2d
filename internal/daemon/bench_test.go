package daemon_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus"
	"github.com/corral-run/corral/bus/control"
	"github.com/corral-run/corral/internal/daemon"
	"github.com/corral-run/corral/internal/testcert"
	"github.com/corral-run/corral/internal/testchild"
)

// benchNode starts a quiet node with a "sleeper" definition (sleep 600)
// and a "relay" one (this binary as a proxy child, to write lines as a
// child: only a child may speak on its socket), without JetStream.
func benchNode(b *testing.B) (*daemon.Daemon, *nats.Conn) { return benchNodeWith(b, false, false) }

// benchNodeWith starts the bench node, with JetStream (durable events, the
// default) or without, and secure or not: with secure, the embedded server
// has users and TLS, and the benchmark's client is an operator over TLS
// with a CA made for the run.
func benchNodeWith(b *testing.B, jetstream, secure bool) (*daemon.Daemon, *nats.Conn) {
	b.Helper()
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
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
`, testchild.ShortTempDir(b), jetstream, exe, testchild.EnvRole, testchild.RoleProxy, testchild.EnvCtrl, benchCtrl(b).Env()[testchild.EnvCtrl])
	var opts []nats.Option
	if secure {
		ca := testcert.New(b)
		cert, key := ca.Issue(b, "bench")
		toml += fmt.Sprintf(`
[[nats.users]]
user = "ops"
password = "bench-secret"
role = "operator"
[nats.tls]
cert = %q
key = %q
`, cert, key)
		opts = append(opts, nats.UserInfo("ops", "bench-secret"), nats.RootCAs(ca.Cert), nats.CustomInboxPrefix(bus.InboxPrefix("ops")))
	}
	d := startDaemon(b, parseConfig(b, toml), quiet)
	nc, err := nats.Connect(d.ClientURL(), opts...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	return d, nc
}

// benchCtrls are the control sockets of the bench nodes' proxy children.
var benchCtrls = map[testing.TB]*testchild.Ctrl{}

// benchCtrl is b's control socket for proxy children.
func benchCtrl(b *testing.B) *testchild.Ctrl {
	if c := benchCtrls[b]; c != nil {
		return c
	}
	c := testchild.NewCtrl(b)
	benchCtrls[b] = c
	b.Cleanup(func() { delete(benchCtrls, b) })
	return c
}

// BenchmarkRelay measures child → node → NATS subscriber throughput: the
// benchmark writes event lines through a real process's child (a proxy
// to its socket); a separate NATS client counts what arrives. In the durable
// case (JetStream on, the default) every line has an id and its ack comes
// once the stream stored the event.
func BenchmarkRelay(b *testing.B) {
	for _, bc := range []struct {
		name                      string
		withAcks, durable, secure bool
	}{
		{"fire-and-forget", false, false, false}, {"acked", true, false, false}, {"durable-acked", true, true, false},
		{"fire-and-forget-tls-users", false, false, true}, {"durable-acked-tls-users", true, true, true},
	} {
		withAcks := bc.withAcks
		b.Run(bc.name, func(b *testing.B) {
			d, nc := benchNodeWith(b, bc.durable, bc.secure)
			if bc.durable && !nodeDurable(b, nc) {
				b.Fatal("the node is not durable")
			}
			mp, err := control.New(nc).Spawn(context.Background(), "", "relay", api.SpawnRequest{})
			if err != nil {
				b.Fatal(err)
			}
			conn := benchCtrl(b).Accept()
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
			acks := make(chan int, 1)
			if withAcks {
				go func() {
					r := bufio.NewReaderSize(conn, 64<<10)
					n := 0
					for n < b.N {
						if _, err := r.ReadSlice('\n'); err != nil {
							break
						}
						n++
					}
					acks <- n
				}()
			}
			w := bufio.NewWriterSize(conn, 64<<10)
			_ = d
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				if withAcks {
					fmt.Fprintf(w, `{"type":"event","event":"progress","data":{"percent":%d,"fps":30},"processId":%q,"timestamp":1738712345801,"id":%d}`+"\n", i%100, mp.ID, i)
				} else {
					fmt.Fprintf(w, `{"type":"event","event":"progress","data":{"percent":%d,"fps":30},"processId":%q,"timestamp":1738712345801}`+"\n", i%100, mp.ID)
				}
			}
			if err := w.Flush(); err != nil {
				b.Fatal(err)
			}
			select {
			case <-done:
			case <-time.After(2 * time.Minute):
				b.Fatalf("received %d of %d events", got.Load(), b.N)
			}
			if withAcks {
				if n := <-acks; n != b.N {
					b.Fatalf("%d acks for %d events", n, b.N)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
		})
	}
}

// nodeDurable asks the node whether its acks wait for storage.
func nodeDurable(b *testing.B, nc *nats.Conn) bool {
	nodes, err := control.New(nc).Nodes(context.Background())
	if err != nil || len(nodes) != 1 {
		b.Fatalf("nodes: %v %v", nodes, err)
	}
	return nodes[0].Durable
}

// BenchmarkRelayLatency paces events at 10 k/s and reports the child-write
// to subscriber-receive latency percentiles.
func BenchmarkRelayLatency(b *testing.B) {
	_, nc := benchNode(b)
	mp, err := control.New(nc).Spawn(context.Background(), "", "relay", api.SpawnRequest{})
	if err != nil {
		b.Fatal(err)
	}
	conn := benchCtrl(b).Accept()
	const rate = 10_000
	n := max(b.N, 20_000)
	sent := make([]int64, n)
	lat := make([]time.Duration, 0, n)
	done := make(chan struct{})
	var seq atomic.Int64
	_, err = nc.Subscribe("process.relay.tick", func(m *nats.Msg) {
		i := seq.Add(1) - 1
		lat = append(lat, time.Duration(time.Now().UnixNano()-atomic.LoadInt64(&sent[i])))
		if int(i) == n-1 {
			close(done)
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	_ = nc.Flush()
	b.ResetTimer()
	// 10 events every millisecond: the rate without a spinning sender
	// stealing one of the two cores.
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for i := 0; i < n; {
		<-tick.C
		for j := 0; j < rate/1000 && i < n; j, i = j+1, i+1 {
			line := fmt.Sprintf(`{"type":"event","event":"tick","data":{"i":%d},"processId":%q,"timestamp":1}`+"\n", i, mp.ID)
			atomic.StoreInt64(&sent[i], time.Now().UnixNano())
			if _, err := conn.Write([]byte(line)); err != nil {
				b.Fatal(err)
			}
		}
	}
	select {
	case <-done:
	case <-time.After(time.Minute):
		b.Fatal("events missing")
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) }
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
	b.ReportMetric(pct(0.999), "p99.9-µs")
}

// BenchmarkSpawn measures spawn over NATS (request to reply, child
// started), one at a time; the children are stopped outside the timer.
func BenchmarkSpawn(b *testing.B) {
	b.Run("plain", func(b *testing.B) { benchSpawn(b, false) })
	b.Run("tls-users", func(b *testing.B) { benchSpawn(b, true) })
}

func benchSpawn(b *testing.B, secure bool) {
	_, nc := benchNodeWith(b, false, secure)
	ctl := control.New(nc)
	ctx := context.Background()
	durs := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if _, err := ctl.Spawn(ctx, "", "sleeper", api.SpawnRequest{}); err != nil {
			b.Fatal(err)
		}
		durs = append(durs, time.Since(t0))
	}
	total := time.Since(start)
	b.StopTimer()
	sort.Slice(durs, func(i, j int) bool { return durs[i] < durs[j] })
	b.ReportMetric(float64(durs[len(durs)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(durs[len(durs)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(total.Seconds()/float64(b.N)*100, "s/100-spawns")
	if _, err := ctl.StopAll(ctx, "sleeper", "SIGKILL"); err != nil {
		b.Fatal(err)
	}
}
