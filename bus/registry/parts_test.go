package registry_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus/registry"
	"github.com/corral-run/corral/internal/testnode"
	"github.com/nats-io/nats.go/jetstream"
)

func longList(n int) api.NodeProcesses {
	np := api.NodeProcesses{Node: "n1", Version: 7, StartedAt: time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)}
	for i := range n {
		np.Processes = append(np.Processes, api.ProcessSummary{ID: fmt.Sprintf("proc_%016d", i), Name: "w", Node: "n1",
			Status: api.StatusRunning, PID: 1000 + i, StartedAt: np.StartedAt})
	}
	return np
}

// A list that fits is one value, as it always was; a longer one is split
// in parts that each fit, and put together again in its order.
func TestAListSplitsInPartsThatFitAndJoinsAgain(t *testing.T) {
	for _, tc := range []struct {
		procs, limit int
		parts        int // at least
	}{{0, 1 << 10, 1}, {5, 64 << 10, 1}, {500, 16 << 10, 4}, {2000, 64 << 10, 4}} {
		np := longList(tc.procs)
		parts, err := registry.SplitList(np, tc.limit)
		if err != nil {
			t.Fatal(err)
		}
		if whole, _ := json.Marshal(np); len(parts) == 1 && string(parts[0]) != string(whole) {
			t.Errorf("%d processes: one part that is not the list as it was: %s", tc.procs, parts[0])
		}
		if len(parts) < tc.parts {
			t.Errorf("%d processes in parts of %d bytes: %d parts, want %d or more", tc.procs, tc.limit, len(parts), tc.parts)
		}
		for k, p := range parts {
			if len(p) > tc.limit {
				t.Errorf("%d processes: part %d is %d bytes, more than %d", tc.procs, k, len(p), tc.limit)
			}
		}
		var first api.NodeProcesses
		if err := json.Unmarshal(parts[0], &first); err != nil {
			t.Fatal(err)
		}
		joined, err := registry.JoinParts(first, func(k int) ([]byte, error) { return parts[k], nil })
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(joined.Processes, np.Processes) || joined.Node != np.Node || joined.Version != np.Version || joined.Parts != 0 {
			t.Errorf("%d processes: joined %d processes, version %d, %d parts", tc.procs, len(joined.Processes), joined.Version, joined.Parts)
		}
	}
}

// A part of another version (the list was written again as it was read)
// is ErrListChanged; a first part that claims more parts than MaxParts is
// refused without reading them.
func TestJoiningAListBeingWrittenOrTooLongFails(t *testing.T) {
	old, _ := registry.SplitList(longList(500), 16<<10)
	next := longList(500)
	next.Version++
	newer, _ := registry.SplitList(next, 16<<10)
	var first api.NodeProcesses
	_ = json.Unmarshal(old[0], &first)
	if _, err := registry.JoinParts(first, func(k int) ([]byte, error) { return newer[k], nil }); !errors.Is(err, registry.ErrListChanged) {
		t.Errorf("parts of a newer version: %v, want ErrListChanged", err)
	}
	first.Parts = registry.MaxParts + 1
	read := 0
	if _, err := registry.JoinParts(first, func(int) ([]byte, error) { read++; return nil, nil }); err == nil || read > 0 {
		t.Errorf("%d parts: %v after %d reads, want an error and none", first.Parts, err, read)
	}
}

// A list left torn in the bucket (its node died between writing the other
// parts and the first) reads as its first part alone, and the lists of
// the other nodes are read as well. So does FindOwner.
func TestATornListReadsAsItsFirstPart(t *testing.T) {
	srv := testnode.StartServer(t, true)
	nc := testnode.Connect(t, srv.ClientURL())
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testnode.Context(t)
	kv, err := registry.Ensure(ctx, js, registry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	put := func(key string, v []byte) {
		t.Helper()
		if _, err := kv.Put(ctx, key, v); err != nil {
			t.Fatal(err)
		}
	}
	old := longList(500)
	oldParts, _ := registry.SplitList(old, 16<<10)
	next := longList(500)
	next.Version++
	nextParts, _ := registry.SplitList(next, 16<<10)
	put(registry.ProcsKey("n1"), oldParts[0]) // the first part of the old list
	for k := 1; k < len(nextParts); k++ {     // the others of the next one
		put(registry.PartKey("n1", k), nextParts[k])
	}
	other := longList(3)
	other.Node = "n2"
	for i := range other.Processes {
		other.Processes[i].ID = fmt.Sprintf("proc_%016d", 900000+i) // not n1's
	}
	whole, _ := json.Marshal(other)
	put(registry.ProcsKey("n2"), whole)

	procs, err := registry.ReadProcs(ctx, kv, []string{"n1", "n2"})
	var first api.NodeProcesses
	_ = json.Unmarshal(oldParts[0], &first)
	if err != nil || len(procs["n1"]) != len(first.Processes) || len(procs["n2"]) != 3 {
		t.Fatalf("read n1 %d processes (want its first part's %d), n2 %d (want 3): %v", len(procs["n1"]), len(first.Processes), len(procs["n2"]), err)
	}
	if owner, ok, err := registry.FindOwner(ctx, kv, first.Processes[0].ID); !ok || owner != "n1" {
		t.Errorf("owner of a process of the first part: %q %v %v", owner, ok, err)
	}
}
