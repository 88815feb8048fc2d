package node_test

import (
	"bufio"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/client/wire"
	"github.com/corral-run/corral/internal/testchild"
	"github.com/corral-run/corral/node"
)

// dialChildSocket connects to mp's socket as its child would.
func dialChildSocket(t *testing.T, transport string, mp api.ManagedProcess) net.Conn {
	t.Helper()
	var c net.Conn
	var err error
	if transport == "unix" {
		c, err = net.Dial("unix", mp.SocketPath)
	} else {
		c, err = net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(mp.TCPPort))
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// A process outside the child's tree (here the test itself) that connects
// to the child's socket gets one error line, code forbidden, and is
// closed; the child itself connects as before.
func TestConnectionFromOutsideTheChildsTreeIsRefused(t *testing.T) {
	for _, transport := range []string{"unix", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			h := newHarness(t, transport)
			h.define(t, "w", h.ctrl.Env(), nil)
			mp := h.spawn(t, "w", node.SpawnOptions{})
			peer := h.ctrl.Accept()

			c := dialChildSocket(t, transport, mp)
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			// What an intruder would send, had it been let in.
			_, _ = c.Write([]byte(line(mp.ID, "event", `"event":"progress","data":{"percent":1},"id":1`) + "\n"))
			r := bufio.NewReader(c)
			got, err := r.ReadString('\n')
			// On unix the kernel names the peer; on tcp the node looks for the
			// connecting socket among the child's tree only.
			why := "pid " + strconv.Itoa(os.Getpid()) + " is not a process this node supervises"
			if transport == "tcp" {
				why = "is not held by process " + mp.ID
			}
			var reply wire.Reply
			if err != nil || json.Unmarshal([]byte(got), &reply) != nil || reply.Type != "error" || reply.Code != wire.CodeForbidden ||
				!strings.Contains(reply.Message, why) {
				t.Fatalf("outsider got %q, %v; want one forbidden error line saying %q", got, err, why)
			}
			if rest, err := r.ReadString('\n'); err == nil {
				t.Errorf("outsider's connection still open: %q", rest)
			}
			if n := h.rec.Count(node.KindEvent, mp.ID); n != 0 {
				t.Errorf("%d events from the outsider were relayed", n)
			}
			// The child is not disturbed.
			peer.Send(line(mp.ID, "connected", `"id":"c"`))
			if got := peer.ReadLine(); got != `{"type":"ack","id":"c"}` {
				t.Errorf("the child after the refusal: %s", got)
			}
		})
	}
}

// Connections that never say anything are closed after the handshake
// timeout; while they wait they neither keep the child out nor receive
// what is sent to it.
func TestSilentConnectionsAreClosedAndDoNotLockTheChildOut(t *testing.T) {
	for _, transport := range []string{"unix", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			h := newHarnessWith(t, node.Config{Transport: transport, HandshakeTimeout: 500 * time.Millisecond})
			closed := filepath.Join(h.dir, "squatters-closed")
			env := h.ctrl.Env()
			env[testchild.EnvRole], env[envConns], env[testchild.EnvReadyFile] = roleSquat, "8", closed
			h.define(t, "w", env, nil)
			mp := h.spawn(t, "w", node.SpawnOptions{})
			// Eight silent connections first, then the child's real one.
			peer := h.ctrl.Accept()
			peer.Send(line(mp.ID, "connected", `"id":1`))
			if got := peer.ReadLine(); got != `{"type":"ack","id":1}` {
				t.Fatalf("the real connection after eight silent ones: %s", got)
			}
			if err := h.sup.Send(mp.ID, json.RawMessage(`{"type":"hello"}`)); err != nil {
				t.Fatal(err)
			}
			if got := peer.ReadLine(); got != `{"type":"hello"}` {
				t.Errorf("send reached the real connection as %q", got)
			}
			if got := testchild.WaitFile(t, closed); got != "closed" {
				t.Errorf("squatter: %q", got)
			}
			// The real connection, which spoke, is still open.
			peer.Send(line(mp.ID, "heartbeat", `"id":2`))
			if got := peer.ReadLine(); got != `{"type":"ack","id":2}` {
				t.Errorf("the real connection after the handshake timeout: %s", got)
			}
		})
	}
}

// Wrappers keep working: the real client may be the child itself after
// an exec (sh -c 'exec worker'), or a process the child forked
// (sh -c 'worker', a runtime that starts a worker).
func TestWrappedChildrenStillConnect(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, transport := range []string{"unix", "tcp"} {
		for name, script := range map[string]string{"exec": `exec "$0"`, "fork": `"$0"; exit $?`} {
			t.Run(transport+"/"+name, func(t *testing.T) {
				h := newHarness(t, transport)
				if err := h.sup.Define(node.Definition{Name: name, Command: "/bin/sh", Args: []string{"-c", script, exe},
					Env: h.ctrl.Env(), StopTimeout: 2 * time.Second}); err != nil {
					t.Fatal(err)
				}
				mp := h.spawn(t, name, node.SpawnOptions{})
				peer := h.ctrl.Accept()
				peer.Send(line(mp.ID, "connected", `"id":1`))
				if got := peer.ReadLine(); got != `{"type":"ack","id":1}` {
					t.Fatalf("wrapped child (%s): %s", script, got)
				}
				h.rec.Wait(t, node.KindConnected, mp.ID)
			})
		}
	}
}

// The original TypeScript ProcessClient, as it speaks: no ids, stats may
// come before connected. It is taken, and nothing is answered.
func TestTypeScriptClientStatsBeforeConnected(t *testing.T) {
	h := newHarness(t, "unix")
	h.define(t, "ts", h.ctrl.Env(), nil)
	mp := h.spawn(t, "ts", node.SpawnOptions{})
	peer := h.ctrl.Accept()
	peer.Send(line(mp.ID, "stats", `"stats":{"cpu":{"user":1200,"system":300,"percent":0.03},"memory":{"rss":52428800,"heapTotal":3000000,"heapUsed":2000000,"external":100000},"uptime":5.12}`))
	peer.Send(line(mp.ID, "connected", ""))
	peer.Send(line(mp.ID, "event", `"event":"progress","data":{"percent":50,"fps":30}`))
	h.rec.WaitFor(t, 10*time.Second, func(r node.Report) bool {
		sr, ok := r.Payload.(api.StatsReport)
		return ok && r.ProcessID == mp.ID && sr.Source == "client" && sr.Stats.Memory.RSS == 52428800
	})
	h.rec.Wait(t, node.KindConnected, mp.ID)
	h.rec.Wait(t, node.KindEvent, mp.ID)
	if err := h.sup.Send(mp.ID, json.RawMessage(`{"type":"subscribe","channel":"live-scores"}`)); err != nil {
		t.Fatal(err)
	}
	// The first line the client reads is what was sent: no ack, no error.
	if got := peer.ReadLine(); got != `{"type":"subscribe","channel":"live-scores"}` {
		t.Errorf("the TypeScript client read %q", got)
	}
}
