package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/corral-run/corral/api"
)

// A node's process list is one value, <node>.procs, while it fits a
// message (the server's max_payload: about 7,400 processes in 1 MiB). A
// longer one is split (api.NodeProcesses.Parts): <node>.procs holds the
// first part, <node>.procs.<k> the k-th, each with the list's node,
// version and life. The node writes the other parts before the first,
// so a reader that finds a part of another version than the first has
// met a list being written again: the next version of the first part is
// on its way.

// MaxParts bounds the parts of a list (a GiB of processes at the default
// max_payload): a reader asks for no more, whatever a value says.
const MaxParts = 1024

// ErrListChanged says that the parts of a process list were of different
// versions: it was being written. Read it again.
var ErrListChanged = errors.New("the process list changed while it was read")

// PartKey is the key of part k (1 or more) of a node's process list:
// <node>.procs.<k>.
func PartKey(nodeID string, k int) string { return ProcsKey(nodeID) + "." + strconv.Itoa(k) }

// SplitList encodes np in as few parts as hold at most limit bytes each:
// one, np as it is, when it fits.
func SplitList(np api.NodeProcesses, limit int) ([][]byte, error) {
	np.Part, np.Parts = 0, 0
	whole, err := json.Marshal(np)
	if err != nil || len(whole) <= limit {
		return [][]byte{whole}, err
	}
	empty := np
	empty.Processes, empty.Part, empty.Parts = []api.ProcessSummary{}, MaxParts, MaxParts
	frame, err := json.Marshal(empty) // a part without processes, its numbers at their longest
	if err != nil {
		return nil, err
	}
	// Where each part starts in np.Processes.
	starts := []int{0}
	size := len(frame)
	for i, p := range np.Processes {
		b, err := json.Marshal(p)
		if err != nil {
			return nil, err
		}
		if size+len(b)+1 > limit && i > starts[len(starts)-1] {
			starts = append(starts, i)
			size = len(frame)
		}
		size += len(b) + 1
	}
	if len(starts) > MaxParts {
		return nil, fmt.Errorf("cannot split the process list of %d processes: more than %d parts of %d bytes", len(np.Processes), MaxParts, limit)
	}
	parts := make([][]byte, len(starts))
	for k, start := range starts {
		end := len(np.Processes)
		if k+1 < len(starts) {
			end = starts[k+1]
		}
		part := np
		part.Processes, part.Part, part.Parts = np.Processes[start:end], k, len(starts)
		if parts[k], err = json.Marshal(part); err != nil {
			return nil, err
		}
	}
	return parts, nil
}

// JoinList completes first, the first part of a node's process list read
// from kv, with the others. A part of another node, version or life is
// ErrListChanged.
func JoinList(ctx context.Context, kv jetstream.KeyValue, first api.NodeProcesses) (api.NodeProcesses, error) {
	return JoinParts(first, func(k int) ([]byte, error) {
		e, err := kv.Get(ctx, PartKey(first.Node, k))
		if err != nil {
			return nil, err
		}
		return e.Value(), nil
	})
}

// FirstOnly is what a reader keeps of a list whose parts it could not put
// together: the processes of its first part, rather than nothing.
func FirstOnly(first api.NodeProcesses) api.NodeProcesses {
	first.Part, first.Parts = 0, 0
	return first
}

// JoinParts completes first, the first part of a node's process list,
// with the others, part k as read gives it. A part of another node,
// version or life is ErrListChanged.
func JoinParts(first api.NodeProcesses, read func(k int) ([]byte, error)) (api.NodeProcesses, error) {
	if first.Parts <= 1 {
		return first, nil
	}
	if first.Part != 0 || first.Parts > MaxParts {
		return api.NodeProcesses{}, fmt.Errorf("cannot read the process list of node %q: part %d of %d", first.Node, first.Part, first.Parts)
	}
	all := first
	all.Processes = append([]api.ProcessSummary(nil), first.Processes...)
	for k := 1; k < first.Parts; k++ {
		data, err := read(k)
		if err != nil {
			return api.NodeProcesses{}, fmt.Errorf("cannot read part %d of the process list of node %q: %w", k, first.Node, err)
		}
		var part api.NodeProcesses
		if err := json.Unmarshal(data, &part); err != nil {
			return api.NodeProcesses{}, fmt.Errorf("cannot read part %d of the process list of node %q: %w", k, first.Node, err)
		}
		if part.Node != first.Node || part.Version != first.Version || !part.StartedAt.Equal(first.StartedAt) ||
			part.Part != k || part.Parts != first.Parts {
			return api.NodeProcesses{}, fmt.Errorf("cannot read the process list of node %q: %w", first.Node, ErrListChanged)
		}
		all.Processes = append(all.Processes, part.Processes...)
	}
	all.Part, all.Parts = 0, 0
	return all, nil
}
