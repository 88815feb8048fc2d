package service

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/corral-run/corral/api"
)

// A reply holds at most the server's max_payload (1 MiB by default), and a
// process with its stats takes about 500 bytes of a list: a node with a
// few thousand processes has more to list than one reply holds. Its list
// and stop-all replies hold what fits and say where the rest is
// (api.ListReply's Next, Rest and More); bus/control asks for the rest.
// A reply that did not fit used to be dropped, and the node counted as
// silent.

// encodeListReply encodes procs, sorted here by id, as node's
// api.ListReply of at most room bytes. A listing (stopped false) that does
// not fit ends at Next; a stop-all's reply (stopped true) sums the rest up
// in Rest, and counts in More those it cannot even sum up.
func encodeListReply(node string, procs []api.ManagedProcess, room int, stopped bool) ([]byte, error) {
	slices.SortFunc(procs, func(a, b api.ManagedProcess) int { return strings.Compare(a.ID, b.ID) })
	nodeJSON, err := json.Marshal(node)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, 0, min(room, 64<<10))
	buf = append(buf, `{"node":`...)
	buf = append(buf, nodeJSON...)
	buf = append(buf, `,"processes":[`...)
	records := make([][]byte, len(procs))
	whole := len(buf) + len("]}")
	for i := range procs {
		if records[i], err = json.Marshal(&procs[i]); err != nil {
			return nil, fmt.Errorf("cannot encode process %s: %w", procs[i].ID, err)
		}
		whole += len(records[i]) + 1
	}
	if whole <= room { // the usual case: everything fits
		for i, b := range records {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = append(buf, b...)
		}
		return append(buf, "]}"...), nil
	}
	// A stop-all's summaries, and restFrom[i]: what summing up procs[i:]
	// in Rest takes.
	var sums [][]byte
	restFrom := make([]int, len(procs)+1)
	if stopped {
		sums = make([][]byte, len(procs))
		for i := len(procs) - 1; i >= 0; i-- {
			if sums[i], err = json.Marshal(summaryOf(&procs[i])); err != nil {
				return nil, fmt.Errorf("cannot encode process %s: %w", procs[i].ID, err)
			}
			restFrom[i] = restFrom[i+1] + len(sums[i]) + 1 // and a comma
		}
	}
	const (
		nextTail = `],"next":"`
		restTail = `],"rest":[`
		moreTail = `],"more":`
		moreMax  = len(moreTail) + 20 + 1 // the count and the closing brace
	)
	i := 0
	for ; i < len(procs); i++ {
		b := records[i]
		need := len(buf) + 1 + len(b)
		if stopped {
			need += len(restTail) + restFrom[i+1] + moreMax
		} else {
			need += len(nextTail) + len(procs[i].ID) + 2
		}
		if need > room {
			if i == 0 && !stopped {
				return nil, fmt.Errorf("the record of %s is %d bytes, more than a reply holds (max_payload)", procs[i].ID, len(b))
			}
			break
		}
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, b...)
	}
	if !stopped {
		buf = append(buf, nextTail...)
		buf = append(buf, procs[i-1].ID...) // ids are [A-Za-z0-9_]: nothing to escape
		return append(buf, `"}`...), nil
	}
	buf = append(buf, restTail...)
	for j := i; j < len(procs); j++ {
		if len(buf)+len(sums[j])+1+moreMax > room {
			if buf[len(buf)-1] == ',' {
				buf = buf[:len(buf)-1] // after the last summary
			}
			buf = append(buf, moreTail...)
			return fmt.Appendf(buf, "%d}", len(procs)-j), nil
		}
		buf = append(buf, sums[j]...)
		buf = append(buf, ',')
	}
	buf[len(buf)-1] = ']'
	return append(buf, '}'), nil
}

// summaryOf is what a stop-all's reply keeps of p when it cannot hold it
// in full.
func summaryOf(p *api.ManagedProcess) api.ProcessSummary {
	return api.ProcessSummary{ID: p.ID, Name: p.Name, Node: p.Node, Status: p.Status, PID: p.PID, StartedAt: p.StartedAt,
		Instance: p.Instance, Service: p.Service}
}
