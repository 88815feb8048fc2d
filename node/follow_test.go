package node_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/internal/await"
	"github.com/corral-run/corral/node"
	"github.com/corral-run/corral/node/nodetest"
)

// A follower gets the tail it asks for, then every byte the child writes,
// from exactly where the tail ends: nothing lost, nothing twice, until
// the process ends (its end is reported once its last output was handed
// over).
func TestFollowLogsFromTheTailOn(t *testing.T) {
	h := newHarness(t, "unix")
	h.define(t, "ticker", role(roleTicker), nil)
	mp := h.spawn(t, "ticker", node.SpawnOptions{})
	logFile := filepath.Join(h.dir, "logs", mp.ID+".log")
	await.Until(t, 10*time.Second, "five ticks in the log", func() bool {
		b, _ := os.ReadFile(logFile)
		return bytes.Count(b, []byte("\n")) >= 5
	})

	out := nodetest.NewOutput()
	ctx := context.Background()
	snap, err := h.sup.FollowLogs(ctx, mp.ID, out, node.TailOptions{Lines: 3})
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSuffix(snap.Tail, "\n"), "\n"); len(lines) != 3 || !strings.HasPrefix(lines[0], "tick ") {
		t.Fatalf("tail %q, want 3 ticks", snap.Tail)
	}
	if snap.Epoch == 0 || snap.Offset <= 0 {
		t.Errorf("snapshot at offset %d, epoch %d", snap.Offset, snap.Epoch)
	}
	out.WaitFor(t, 10*time.Second, func(b []byte) bool { return bytes.Count(b, []byte("\n")) >= 20 })
	if _, err := h.sup.Stop(ctx, mp.ID, 0); err != nil {
		t.Fatal(err)
	}

	log, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	got, start, _, gap := out.Got()
	if gap != "" {
		t.Error(gap)
	}
	if start != snap.Offset {
		t.Errorf("the output handed over begins at %d, the tail ends at %d", start, snap.Offset)
	}
	if !bytes.HasSuffix(log[:snap.Offset], []byte(snap.Tail)) {
		t.Errorf("the tail is not what the log holds before offset %d", snap.Offset)
	}
	if !bytes.Equal(log[snap.Offset:], got) {
		t.Errorf("handed over %d bytes after the tail; the log holds %d more:\n%.300s\n---\n%.300s", len(got), len(log)-int(snap.Offset), got, log[snap.Offset:])
	}

	// The process has ended: its tail, and nothing follows.
	after, err := h.sup.FollowLogs(ctx, mp.ID, nodetest.NewOutput(), node.TailOptions{Lines: 1})
	if err != nil || after.Offset != int64(len(log)) || !strings.HasPrefix(after.Tail, "tick ") {
		t.Errorf("following the ended process: %+v, %v (log of %d bytes)", after, err, len(log))
	}
}

// A follower taken away gets nothing more (but a call in flight); a new
// follower replaces the old one.
func TestUnfollowLogs(t *testing.T) {
	h := newHarness(t, "unix")
	h.define(t, "ticker", role(roleTicker), nil)
	mp := h.spawn(t, "ticker", node.SpawnOptions{})
	ctx := context.Background()
	first := nodetest.NewOutput()
	if _, err := h.sup.FollowLogs(ctx, mp.ID, first, node.TailOptions{}); err != nil {
		t.Fatal(err)
	}
	first.WaitFor(t, 10*time.Second, func(b []byte) bool { return bytes.Count(b, []byte("\n")) >= 2 })
	h.sup.UnfollowLogs(mp.ID, first)
	_, _, calls, _ := first.Got()

	second := nodetest.NewOutput()
	h.sup.UnfollowLogs(mp.ID, second) // not its follower: nothing changes
	snap, err := h.sup.FollowLogs(ctx, mp.ID, second, node.TailOptions{})
	if err != nil || snap.Tail != "" {
		t.Fatalf("follow with no tail: %+v, %v", snap, err)
	}
	second.WaitFor(t, 10*time.Second, func(b []byte) bool { return bytes.Count(b, []byte("\n")) >= 10 })
	if _, _, now, _ := first.Got(); now > calls+1 {
		t.Errorf("the follower taken away got %d more calls", now-calls)
	}
	third := nodetest.NewOutput()
	if _, err := h.sup.FollowLogs(ctx, mp.ID, third, node.TailOptions{}); err != nil {
		t.Fatal(err)
	}
	third.WaitFor(t, 10*time.Second, func(b []byte) bool { return bytes.Count(b, []byte("\n")) >= 2 })
	_, _, before, _ := second.Got()
	third.WaitFor(t, 10*time.Second, func(b []byte) bool { return bytes.Count(b, []byte("\n")) >= 10 })
	if _, _, after, _ := second.Got(); after > before+1 {
		t.Errorf("the replaced follower got %d more calls", after-before)
	}
}

// Tails and follows of what is not there, or too much, are refused with
// the error's kind.
func TestFollowLogsRefusals(t *testing.T) {
	h := newHarness(t, "unix")
	h.define(t, "ticker", role(roleTicker), nil)
	mp := h.spawn(t, "ticker", node.SpawnOptions{})
	ctx := context.Background()
	for _, tc := range []struct {
		id   string
		opts node.TailOptions
		kind error
	}{
		{"proc_n0suchpr0cess000", node.TailOptions{}, api.ErrNotFound},
		{mp.ID, node.TailOptions{Lines: node.MaxTailLines + 1}, api.ErrInvalid},
		{mp.ID, node.TailOptions{Lines: -1}, api.ErrInvalid},
		{mp.ID, node.TailOptions{Since: -time.Second}, api.ErrInvalid},
	} {
		_, err := h.sup.FollowLogs(ctx, tc.id, nodetest.NewOutput(), tc.opts)
		if !errors.Is(err, tc.kind) || !strings.HasPrefix(err.Error(), "cannot follow ") {
			t.Errorf("FollowLogs(%s, %+v) = %v, want %v", tc.id, tc.opts, err, tc.kind)
		}
		if _, err := h.sup.Tail(ctx, tc.id, tc.opts); !errors.Is(err, tc.kind) {
			t.Errorf("Tail(%s, %+v) = %v, want %v", tc.id, tc.opts, err, tc.kind)
		}
	}
}
