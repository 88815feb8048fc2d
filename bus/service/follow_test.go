package service_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus"
	"github.com/corral-run/corral/bus/control"
	"github.com/corral-run/corral/bus/embedded"
	"github.com/corral-run/corral/bus/service"
	"github.com/corral-run/corral/internal/await"
	"github.com/corral-run/corral/internal/testnode"
	"github.com/corral-run/corral/node"
)

// echoer is a child that prints "ready", then each line the test writes
// to its FIFO as it comes, then "bye" once the test closes the FIFO, and
// exits 0.
type echoer struct {
	def  node.Definition
	fifo string
}

func newEchoer(t testing.TB, name string) *echoer {
	t.Helper()
	fifo := filepath.Join(t.TempDir(), "in")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	return &echoer{fifo: fifo, def: node.Definition{Name: name, Command: "sh",
		Args: []string{"-c", `echo ready; cat "$0"; echo bye`, fifo}, StopTimeout: time.Second}}
}

// open opens the FIFO for writing: it waits for the child's cat.
func (e *echoer) open(t testing.TB) *os.File {
	t.Helper()
	f, err := os.OpenFile(e.fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// followed collects what Control.Follow hands over.
type followed struct {
	out  chan control.Output
	done chan error
	end  api.LogEnd
}

func follow(ctx context.Context, ctl *control.Control, id string, opts control.FollowOptions) *followed {
	f := &followed{out: make(chan control.Output, 1024), done: make(chan error, 1)}
	go func() {
		end, err := ctl.Follow(ctx, id, opts, func(o control.Output) error { f.out <- o; return nil })
		f.end = end
		f.done <- err
	}()
	return f
}

// waitFor reads the output until all of it holds want, and returns it.
func (f *followed) waitFor(t *testing.T, got *strings.Builder, want string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for !strings.Contains(got.String(), want) {
		select {
		case o := <-f.out:
			got.Write(o.Data)
		case err := <-f.done:
			t.Fatalf("the follow ended (%v) before %q came; it had:\n%s", err, want, got)
		case <-deadline:
			t.Fatalf("no %q within 10s; the follow had:\n%s", want, got)
		}
	}
}

// A follower sees the tail, then each line as the child prints it, and
// the process's end after its last line.
func TestFollowIsLiveUntilTheEnd(t *testing.T) {
	e := newEchoer(t, "echo")
	n := testnode.Start(t, testnode.StartServer(t, false), testnode.Spec{ID: "n1", Definitions: []node.Definition{e.def}})
	ctx := testnode.Context(t)
	mp := testnode.Spawn(t, n, "echo")
	w := e.open(t) // cat runs: "ready" is written
	f := follow(ctx, n.Ctl, mp.ID, control.FollowOptions{Tail: 10})
	var got strings.Builder
	f.waitFor(t, &got, "ready\n")
	if n.Svc.Followers(mp.ID) != 1 {
		t.Errorf("%d followers, want 1", n.Svc.Followers(mp.ID))
	}
	for i := range 3 {
		line := fmt.Sprintf("hello %d\n", i)
		if _, err := w.WriteString(line); err != nil {
			t.Fatal(err)
		}
		f.waitFor(t, &got, line)
	}
	w.Close()
	select {
	case err := <-f.done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the follow did not end with the process")
	}
	for len(f.out) > 0 {
		got.Write((<-f.out).Data)
	}
	if got.String() != "ready\nhello 0\nhello 1\nhello 2\nbye\n" {
		t.Errorf("followed %q", got.String())
	}
	if f.end.ProcessID != mp.ID || f.end.Status != api.StatusStopped || f.end.ExitCode == nil || *f.end.ExitCode != 0 {
		t.Errorf("end %+v", f.end)
	}

	// Ended: the tail, and the end at once.
	var tail strings.Builder
	end, err := n.Ctl.Follow(ctx, mp.ID, control.FollowOptions{Tail: 2}, func(o control.Output) error {
		tail.Write(o.Data)
		return nil
	})
	if err != nil || tail.String() != "hello 2\nbye\n" || end.Status != api.StatusStopped {
		t.Errorf("following the ended process: %q, %+v, %v", tail.String(), end, err)
	}
}

// Requests a node cannot take are refused with 400 and a sentence that
// says why; an unknown process is "no such process".
func TestFollowRefusesBadRequests(t *testing.T) {
	n := testnode.StartOne(t)
	ctx := testnode.Context(t)
	mp := testnode.Spawn(t, n, "sleeper")
	nc := testnode.Connect(t, n.URL)
	for _, tc := range []struct{ body, says string }{
		{`{}`, "follower"},
		{`{"follower":""}`, "follower"},
		{`{"follower":"a b"}`, "follower"},
		{`{"follower":"a.b"}`, "follower"},
		{`{"follower":"` + strings.Repeat("x", 65) + `"}`, "follower"},
		{`{"follower":"f","tail":10001}`, "tail 10001 is out of range"},
		{`{"follower":"f","tail":-1}`, "tail -1 is out of range"},
		{`{"follower":"f","sinceMs":-5}`, "sinceMs -5 is out of range"},
		{`{"follower":"f","sinceMs":1e30}`, "bad request body"},
		{`{"follower":"f","lines":5}`, "unknown field"},
		{`[1]`, "expected a JSON object"},
		{`{"follower":"f"} {}`, "more after the JSON object"},
	} {
		m, err := nc.RequestWithContext(ctx, bus.ProcSubject(mp.ID, bus.VerbFollow), []byte(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		desc := m.Header.Get(micro.ErrorHeader)
		if m.Header.Get(micro.ErrorCodeHeader) != "400" || !strings.HasPrefix(desc, fmt.Sprintf("cannot follow %q: ", mp.ID)) || !strings.Contains(desc, tc.says) {
			t.Errorf("%s: %s %q, want 400 saying %q", tc.body, m.Header.Get(micro.ErrorCodeHeader), desc, tc.says)
		}
	}
	if n.Svc.Followers(mp.ID) != 0 {
		t.Errorf("refused requests left %d followers", n.Svc.Followers(mp.ID))
	}
	_, err := n.Ctl.Follow(ctx, "proc_n0suchpr0cess000", control.FollowOptions{}, func(control.Output) error { return nil })
	if !errors.Is(err, control.ErrNotFound) || !strings.Contains(err.Error(), "no such process") {
		t.Errorf("following an unknown process: %v", err)
	}
}

// A process has at most MaxFollowers followers; one that stops renewing
// its lease (killed, say) loses it after three renewal periods, and the
// node stops publishing what nobody follows.
func TestFollowLeasesAreBoundedAndExpire(t *testing.T) {
	ticker := node.Definition{Name: "ticker", Command: "sh", Args: []string{"-c", `while :; do echo tick; sleep 0.01; done`}, StopTimeout: time.Second}
	n := testnode.Start(t, testnode.StartServer(t, false), testnode.Spec{ID: "n1", Definitions: []node.Definition{ticker},
		Service: service.Config{Follow: service.FollowLimits{MaxFollowers: 2, Renew: 100 * time.Millisecond}}})
	ctx := testnode.Context(t)
	mp := testnode.Spawn(t, n, "ticker")
	nc := testnode.Connect(t, n.URL)
	msgs := make(chan *nats.Msg, 100000)
	sub, err := nc.ChanSubscribe(bus.LogSubject(mp.ID), msgs)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	ask := func(follower string) (api.FollowReply, error) {
		var r api.FollowReply
		m, err := nc.RequestWithContext(ctx, bus.ProcSubject(mp.ID, bus.VerbFollow), fmt.Appendf(nil, `{"follower":%q}`, follower))
		if err != nil {
			return r, err
		}
		if desc := m.Header.Get(micro.ErrorHeader); desc != "" {
			return r, fmt.Errorf("%s %s", m.Header.Get(micro.ErrorCodeHeader), desc)
		}
		return r, json.Unmarshal(m.Data, &r)
	}
	for _, f := range []string{"one", "two"} {
		if r, err := ask(f); err != nil || r.Renewed || r.RenewMs != 100 {
			t.Fatalf("follower %s: %+v, %v", f, r, err)
		}
	}
	if _, err := ask("three"); err == nil || !strings.HasPrefix(err.Error(), "503 ") || !strings.Contains(err.Error(), "2 followers") {
		t.Errorf("a third follower: %v, want 503", err)
	}
	if r, err := ask("one"); err != nil || !r.Renewed {
		t.Errorf("a renewal: %+v, %v", r, err)
	}
	m, err := nc.RequestWithContext(ctx, bus.ProcSubject(mp.ID, bus.VerbFollow), []byte(`{"follower":"two","release":true}`))
	if err != nil || m.Header.Get(micro.ErrorHeader) != "" || n.Svc.Followers(mp.ID) != 1 {
		t.Errorf("a release: %v %v, %d followers left", err, m.Header, n.Svc.Followers(mp.ID))
	}
	select {
	case m := <-msgs:
		if !strings.HasPrefix(string(m.Data), "tick\n") || m.Header.Get(bus.HeaderProcessID) != mp.ID {
			t.Errorf("published %q %v", m.Data, m.Header)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("nothing published while followed")
	}

	// Nobody renews: the leases expire, and the publishing stops.
	await.Until(t, 10*time.Second, "the leases to expire", func() bool { return n.Svc.Followers(mp.ID) == 0 })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	before := len(msgs)
	snap, err := n.Sup.Tail(ctx, mp.ID, node.TailOptions{Lines: 1})
	if err != nil {
		t.Fatal(err)
	}
	await.Until(t, 10*time.Second, "twenty more ticks in the log", func() bool {
		now, err := n.Sup.Tail(ctx, mp.ID, node.TailOptions{Lines: 1})
		return err == nil && now.Offset >= snap.Offset+20*int64(len("tick\n"))
	})
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if after := len(msgs); after > before+2 { // one or two may have been on their way
		t.Errorf("%d messages published after the last lease expired", after-before)
	}
}

// Output that comes faster than the node may publish it (RateBytes) is
// dropped there, not queued without bound, and the follower is told how
// much it missed: what it got and what it missed add up to all of it.
func TestFollowDropsWhatItCannotPass(t *testing.T) {
	e := newEchoer(t, "flood")
	n := testnode.Start(t, testnode.StartServer(t, false), testnode.Spec{ID: "n1", Definitions: []node.Definition{e.def},
		Service: service.Config{Follow: service.FollowLimits{RateBytes: 8 << 10}}})
	ctx := testnode.Context(t)
	mp := testnode.Spawn(t, n, "flood")
	w := e.open(t)
	await.Until(t, 10*time.Second, "ready in the log", func() bool {
		snap, err := n.Sup.Tail(ctx, mp.ID, node.TailOptions{Lines: 1})
		return err == nil && snap.Tail == "ready\n"
	})
	f := follow(ctx, n.Ctl, mp.ID, control.FollowOptions{Tail: 1})
	var got strings.Builder
	f.waitFor(t, &got, "ready\n") // the tail: what follows comes live
	got.Reset()
	if _, err := w.WriteString("first\n"); err != nil {
		t.Fatal(err)
	}
	f.waitFor(t, &got, "first\n")
	line := strings.Repeat("x", 99) + "\n"
	for range 2000 { // 200 KB at once
		if _, err := w.WriteString(line); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	var missed int64
	for done := false; !done; {
		select {
		case o := <-f.out:
			got.Write(o.Data)
			missed += o.Missed
		case err := <-f.done:
			if err != nil {
				t.Fatal(err)
			}
			done = true
		case <-time.After(20 * time.Second):
			t.Fatal("the follow did not end")
		}
	}
	for len(f.out) > 0 {
		o := <-f.out
		got.Write(o.Data)
		missed += o.Missed
	}
	total := int64(len("first\n") + 2000*len(line) + len("bye\n"))
	if missed <= 0 || int64(got.Len())+missed != total {
		t.Errorf("got %d bytes and missed %d; the child wrote %d after the tail", got.Len(), missed, total)
	}
	if x := strings.Count(got.String(), "x"); x > 100<<10 {
		t.Errorf("got %d bytes of the flood of 200 KB at 8 KiB/s", x)
	}
	r, err := n.Ctl.Logs(ctx, mp.ID, 3000)
	if err != nil || strings.Count(r.Log, line) != 2000 {
		t.Errorf("the log kept %d of the 2000 lines (%v)", strings.Count(r.Log, line), err)
	}
}

// FollowAll follows every process of a definition, on every node, those
// running and those that start while it follows, each output with its
// process, and each one's end.
func TestFollowAllTakesInNewProcesses(t *testing.T) {
	hello := node.Definition{Name: "hello", Command: "sh", Args: []string{"-c", `echo "hello from $DONKEYLABS_PROCESS_ID"; exec sleep 30`},
		StopTimeout: time.Second}
	srv := testnode.StartServer(t, false)
	n := testnode.Start(t, srv, testnode.Spec{ID: "n1", Definitions: []node.Definition{hello, testnode.Sleeper}})
	n2 := testnode.Start(t, srv, testnode.Spec{ID: "n2", Definitions: []node.Definition{hello}})
	ctx := testnode.Context(t)
	first := testnode.Spawn(t, n, "hello")
	testnode.Spawn(t, n, "sleeper")
	got := make(chan control.Followed, 100)
	fctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- n.Ctl.FollowAll(fctx, control.Selector{Name: "hello"}, control.FollowOptions{Tail: 10}, func(f control.Followed) error {
			got <- f
			return nil
		})
	}()
	next := func(what string) control.Followed {
		t.Helper()
		select {
		case f := <-got:
			return f
		case <-time.After(10 * time.Second):
			t.Fatalf("no %s within 10s", what)
		}
		panic("unreachable")
	}
	if f := next("output of the first"); f.Process.ID != first.ID || string(f.Data) != "hello from "+first.ID+"\n" {
		t.Fatalf("first: %+v %q", f.Process, f.Data)
	}
	second, err := n.Ctl.Spawn(ctx, "n2", "hello", api.SpawnRequest{}) // on the other node
	if err != nil {
		t.Fatal(err)
	}
	if f := next("output of the second"); f.Process.ID != second.ID || f.Process.Node != "n2" || string(f.Data) != "hello from "+second.ID+"\n" {
		t.Fatalf("second: %+v %q", f.Process, f.Data)
	}
	if _, err := n.Ctl.Stop(ctx, first.ID, ""); err != nil {
		t.Fatal(err)
	}
	if f := next("the first's end"); f.Process.ID != first.ID || f.End == nil || f.End.Status != api.StatusStopped {
		t.Fatalf("after the stop: %+v", f)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("FollowAll = %v after its context ended", err)
	}
	if k := n2.Svc.Followers(second.ID); k != 0 {
		t.Errorf("%d followers left once FollowAll returned: a follower releases its lease", k)
	}
}

// One requester (a user: the viewers here sign in as alice and bob) may
// hold at most MaxPerRequester of a process's leases, whatever follower
// tokens and connections it uses, so the others can still follow it. The
// refusal is a 503 that names the bound; a renewal is never refused, and
// a release makes room again.
func TestFollowLeasesAreBoundedPerRequester(t *testing.T) {
	users := []embedded.User{{Name: "alice", Password: "a", Role: bus.RoleViewer}, {Name: "bob", Password: "b", Role: bus.RoleViewer}}
	srv := testnode.StartServerWith(t, embedded.Config{Users: users})
	n := testnode.Start(t, srv, testnode.Spec{ID: "n1",
		Service: service.Config{Follow: service.FollowLimits{MaxFollowers: 4, MaxPerRequester: 2}}})
	ctx := testnode.Context(t)
	mp := testnode.Spawn(t, n, "sleeper")
	as := func(u embedded.User) *nats.Conn {
		return testnode.Connect(t, n.URL, nats.UserInfo(u.Name, u.Password), nats.CustomInboxPrefix(bus.InboxPrefix(u.Name)))
	}
	alice1, alice2, bob := as(users[0]), as(users[0]), as(users[1])
	ask := func(nc *nats.Conn, body string) (api.FollowReply, error) {
		t.Helper()
		var r api.FollowReply
		m, err := nc.RequestWithContext(ctx, bus.ProcSubject(mp.ID, bus.VerbFollow), []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		if desc := m.Header.Get(micro.ErrorHeader); desc != "" {
			return r, fmt.Errorf("%s %s", m.Header.Get(micro.ErrorCodeHeader), desc)
		}
		return r, json.Unmarshal(m.Data, &r)
	}
	for _, f := range []struct {
		nc       *nats.Conn
		follower string
	}{{alice1, "a1"}, {alice2, "a2"}} {
		if _, err := ask(f.nc, fmt.Sprintf(`{"follower":%q}`, f.follower)); err != nil {
			t.Fatalf("alice's follower %s: %v", f.follower, err)
		}
	}
	_, err := ask(alice2, `{"follower":"a3"}`)
	if err == nil || !strings.HasPrefix(err.Error(), "503 cannot follow") || !strings.Contains(err.Error(), "_INBOX_alice holds 2 of its leases") ||
		!strings.Contains(err.Error(), "the most one requester may hold") {
		t.Errorf("alice's third follower: %v, want a 503 naming the bound per requester", err)
	}
	if _, err := ask(bob, `{"follower":"b1"}`); err != nil {
		t.Errorf("bob follows while alice holds all she may: %v", err)
	}
	if r, err := ask(alice1, `{"follower":"a1"}`); err != nil || !r.Renewed {
		t.Errorf("alice renews: %+v, %v", r, err)
	}
	if _, err := ask(alice1, `{"follower":"a1","release":true}`); err != nil {
		t.Fatal(err)
	}
	if _, err := ask(alice2, `{"follower":"a3"}`); err != nil {
		t.Errorf("alice follows again once she released a lease: %v", err)
	}
	if k := n.Svc.Followers(mp.ID); k != 3 {
		t.Errorf("%d followers, want 3 (a2, a3, b1)", k)
	}
	// The node's own connection follows for many (the gateway, for every
	// browser): the bound per requester is not for it.
	for _, f := range []struct {
		nc       *nats.Conn
		follower string
	}{{alice2, "a2"}, {alice2, "a3"}, {bob, "b1"}} {
		if _, err := ask(f.nc, fmt.Sprintf(`{"follower":%q,"release":true}`, f.follower)); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"g1", "g2", "g3", "g4"} {
		if _, err := ask(n.Conn, fmt.Sprintf(`{"follower":%q}`, f)); err != nil {
			t.Errorf("the node's own connection, follower %s: %v", f, err)
		}
	}
	if _, err := ask(n.Conn, `{"follower":"g5"}`); err == nil || !strings.Contains(err.Error(), "the most a process may have") {
		t.Errorf("a fifth follower: %v, want the bound of all followers", err)
	}
	// Another node's gateway follows for its browsers over that node's
	// connection: not bounded per requester either.
	for _, f := range []string{"g1", "g2", "g3", "g4"} {
		if _, err := ask(n.Conn, fmt.Sprintf(`{"follower":%q,"release":true}`, f)); err != nil {
			t.Fatal(err)
		}
	}
	n2 := testnode.Start(t, srv, testnode.Spec{ID: "n2"})
	for _, f := range []string{"r1", "r2", "r3", "r4"} {
		if _, err := ask(n2.Conn, fmt.Sprintf(`{"follower":%q}`, f)); err != nil {
			t.Errorf("node n2's connection, follower %s: %v", f, err)
		}
	}
}
