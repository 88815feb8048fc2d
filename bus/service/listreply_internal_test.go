package service

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/corral-run/corral/api"
)

func someProcesses(n int, meta int) []api.ManagedProcess {
	procs := make([]api.ManagedProcess, n)
	for i := range procs {
		// Made in reverse order: the reply sorts them.
		procs[i] = api.ManagedProcess{ID: fmt.Sprintf("proc_%016d", n-i), Name: "w", Node: "n1", Status: api.StatusRunning,
			Metadata: json.RawMessage(`{"k":"` + strings.Repeat("x", meta) + `"}`)}
	}
	return procs
}

// A list or stop-all reply holds at most room bytes, in the order of the
// ids, and says where the rest is: Next for a list, Rest (then More) for
// a stop-all.
func TestAListReplyHoldsWhatFitsAndSaysWhereTheRestIs(t *testing.T) {
	for _, tc := range []struct {
		name        string
		procs, meta int
		room        int
		stopped     bool
		cut         bool // not every process is in Processes
		named       bool // a stop-all holds none of them in full, and counts some in More
	}{
		{name: "fits", procs: 10, meta: 10, room: 64 << 10},
		{name: "none", procs: 0, room: 1 << 10},
		{name: "list cut short", procs: 100, meta: 500, room: 8 << 10, cut: true},
		{name: "stop-all sums the rest up", procs: 40, meta: 500, room: 8 << 10, stopped: true, cut: true},
		{name: "stop-all counts what it cannot name", procs: 1000, meta: 100, room: 8 << 10, stopped: true, cut: true, named: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			procs := someProcesses(tc.procs, tc.meta)
			data, err := encodeListReply("n1", procs, tc.room, tc.stopped)
			if err != nil {
				t.Fatal(err)
			}
			if len(data) > tc.room {
				t.Errorf("%d bytes, more than the room of %d", len(data), tc.room)
			}
			var lr api.ListReply
			dec := json.NewDecoder(strings.NewReader(string(data)))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&lr); err != nil {
				t.Fatalf("%v: %s", err, data)
			}
			listed := len(lr.Processes)
			switch {
			case lr.Node != "n1":
				t.Fatalf("node %q", lr.Node)
			case !tc.cut && (listed != tc.procs || lr.Next != "" || lr.Rest != nil || lr.More != 0):
				t.Fatalf("%d listed of %d, next %q, %d in rest, more %d", listed, tc.procs, lr.Next, len(lr.Rest), lr.More)
			case tc.cut && !tc.stopped && (listed == 0 || listed == tc.procs || lr.Next != lr.Processes[listed-1].ID || lr.Rest != nil):
				t.Fatalf("%d listed of %d, next %q, %d in rest", listed, tc.procs, lr.Next, len(lr.Rest))
			case tc.cut && tc.stopped && (lr.Next != "" || listed+len(lr.Rest)+lr.More != tc.procs || (lr.More > 0) != tc.named || (tc.named && listed > 0)):
				t.Fatalf("%d listed, %d in rest, %d more, of %d; next %q", listed, len(lr.Rest), lr.More, tc.procs, lr.Next)
			}
			if tc.cut && lr.More == 0 { // as much as fits: one more record would not have
				next, _ := json.Marshal(procs[listed])
				if len(data)+len(next) < tc.room-64 {
					t.Errorf("%d bytes and the next record's %d fit in %d", len(data), len(next), tc.room)
				}
			}
			var ids []string
			for _, p := range lr.Processes {
				ids = append(ids, p.ID)
			}
			for _, p := range lr.Rest {
				ids = append(ids, p.ID)
			}
			for i, id := range ids {
				if want := fmt.Sprintf("proc_%016d", i+1); id != want {
					t.Fatalf("id %d is %s, want %s: not in the order of the ids", i, id, want)
				}
			}
		})
	}
	if _, err := encodeListReply("n1", someProcesses(1, 4<<10), 2<<10, false); err == nil || !strings.Contains(err.Error(), "more than a reply holds") {
		t.Errorf("a record bigger than a reply: %v", err)
	}
}
