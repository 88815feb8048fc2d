package client

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
)

// TestPendingQueue takes the events out in several orders and checks after
// each step that the queue finds them, keeps its count and size, knows the
// oldest, and lists the rest in id order.
func TestPendingQueue(t *testing.T) {
	const n = 300
	for _, tc := range []struct {
		name  string
		order func([]uint64)
	}{
		{"in order", func([]uint64) {}},
		{"reversed", slices.Reverse[[]uint64]},
		{"random", func(ids []uint64) {
			r := rand.New(rand.NewPCG(1, 2))
			r.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
		}},
		{"all but the first", func(ids []uint64) { ids[0], ids[len(ids)-1] = ids[len(ids)-1], ids[0] }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var q pendingQueue
			left := map[uint64]bool{}
			ids := make([]uint64, n)
			for i := range ids {
				id := uint64(i + 1)
				ids[i], left[id] = id, true
				q.push(&pendingEmit{id: id, head: []byte("h" + strconv.Itoa(i))})
			}
			tc.order(ids)
			for _, id := range ids {
				if q.take(id+1000) != nil {
					t.Fatalf("took unknown id %d", id+1000)
				}
				p := q.take(id)
				if p == nil || p.id != id {
					t.Fatalf("take(%d) = %v", id, p)
				}
				if q.take(id) != nil {
					t.Fatalf("took %d twice", id)
				}
				delete(left, id)
				checkQueue(t, &q, left)
			}
			if len(q.slots) != 0 {
				t.Fatalf("empty queue keeps %d slots", len(q.slots))
			}
		})
	}
}

func checkQueue(t *testing.T, q *pendingQueue, left map[uint64]bool) {
	t.Helper()
	want := make([]uint64, 0, len(left))
	size := 0
	for id := range left {
		want = append(want, id)
		size += len("h"+strconv.Itoa(int(id-1))) + idTailBytes
	}
	slices.Sort(want)
	if q.live != len(want) || q.bytes != size {
		t.Fatalf("live=%d bytes=%d, want %d and %d", q.live, q.bytes, len(want), size)
	}
	if o := q.oldest(); (o == nil) != (len(want) == 0) || (o != nil && o.id != want[0]) {
		t.Fatalf("oldest = %v, want %v", o, want)
	}
	if len(q.slots)-q.head > 4*q.live+64 {
		t.Fatalf("%d slots for %d events: holes are not compacted", len(q.slots)-q.head, q.live)
	}
	var lines []byte
	for _, id := range want {
		lines = appendIDTail(append(lines, "h"+strconv.Itoa(int(id-1))...), id)
	}
	if got := q.appendLines(nil); !bytes.Equal(got, lines) {
		t.Fatalf("appendLines:\n%s\nwant\n%s", got, lines)
	}
}

func TestAppendEventLines(t *testing.T) {
	in := `{"type":"event","event":"a"}` + "\n" +
		`{"type":"heartbeat"}` + "\n" +
		`{"type":"connected"}` + "\n" +
		`{"type":"event","event":"b"}` + "\n"
	want := `{"type":"event","event":"a"}` + "\n" + `{"type":"event","event":"b"}` + "\n"
	if got := string(appendEventLines(nil, []byte(in))); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if got := appendEventLines(nil, nil); len(got) != 0 {
		t.Fatalf("got %q from nothing", got)
	}
}
