package gateway

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/corral-run/corral/api"
)

func TestNewLines(t *testing.T) {
	t.Parallel()
	l := func(s string) []string { return splitLines(s) }
	for _, tc := range []struct {
		prev, cur, fresh string
		gap              bool
	}{
		{"", "a\nb\n", "a|b", false},
		{"a\nb\n", "a\nb\n", "", false},
		{"a\nb\n", "a\nb\nc\n", "c", false},
		{"a\nb\nc\n", "b\nc\nd\ne\n", "d|e", false}, // the window slid
		{"a\nb\nc\n", "x\ny\nz\n", "x|y|z", true},   // more than a window between two reads
		{"a\nhal\n", "a\nhalf done\nnext\n", "half done|next", false},
		{"x\nx\nx\n", "x\nx\nx\n", "", false}, // identical lines filling the window: seen once
	} {
		fresh, gap := newLines(l(tc.prev), l(tc.cur))
		if strings.Join(fresh, "|") != tc.fresh || gap != tc.gap {
			t.Errorf("newLines(%q, %q) = %q, %v; want %q, %v", tc.prev, tc.cur, fresh, gap, tc.fresh, tc.gap)
		}
	}
}

// fakeLogs is a process whose log grows one line per read until it ends.
type fakeLogs struct {
	log    []string
	reads  int
	endAt  int
	status api.Status
}

func (f *fakeLogs) Logs(_ context.Context, _ string, lines int) (string, error) {
	f.reads++
	if f.reads < f.endAt {
		f.log = append(f.log, "line "+strings.Repeat("i", f.reads))
	} else {
		f.status = api.StatusStopped
	}
	tail := f.log[max(0, len(f.log)-lines):]
	return strings.Join(tail, "\n") + "\n", nil
}

func (f *fakeLogs) Get(context.Context, string) (api.ManagedProcess, error) {
	return api.ManagedProcess{ID: "proc_x", Status: f.status}, nil
}

func TestFollowLogsUntilTheEnd(t *testing.T) {
	t.Parallel()
	src := &fakeLogs{endAt: 6, status: api.StatusRunning}
	var got []string
	end, err := followLogs(context.Background(), src, "proc_x", time.Millisecond, nil, func(fresh []string, gap bool) error {
		if gap {
			t.Error("a gap")
		}
		got = append(got, fresh...)
		return nil
	})
	if err != nil || end.Status != api.StatusStopped {
		t.Fatalf("followLogs = %+v, %v", end, err)
	}
	if !slices.Equal(got, src.log) {
		t.Errorf("sent %q, the log is %q", got, src.log)
	}
}
