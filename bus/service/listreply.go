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

// replyHeadroom is what a list's reply leaves of max_payload for the
// message's headers and the protocol line.
const replyHeadroom = 4 << 10

// listRoom is the most a list's reply may hold on this connection.
func (s *Service) listRoom() int {
	return max(int(s.nc.MaxPayload())-replyHeadroom, 1<<10)
}

// encodeListReply encodes procs, sorted here by id, as node's
// api.ListReply of at most room bytes. A listing (stopped false) that does
// not fit ends at Next; a stop-all's reply (stopped true) names the rest
// in Rest, and counts in More those it cannot even name.
func encodeListReply(node string, procs []api.ManagedProcess, room int, stopped bool) ([]byte, error) {
	slices.SortFunc(procs, func(a, b api.ManagedProcess) int { return strings.Compare(a.ID, b.ID) })
	nodeJSON, err := json.Marshal(node)
	if err != nil {
		return nil, err
	}
	// restFrom[i] is what naming procs[i:] in Rest takes.
	restFrom := make([]int, len(procs)+1)
	for i := len(procs) - 1; i >= 0; i-- {
		restFrom[i] = restFrom[i+1] + len(procs[i].ID) + 3 // quotes and a comma
	}
	const (
		nextTail = `],"next":"`
		restTail = `],"rest":[`
		moreTail = `],"more":`
	)
	buf := make([]byte, 0, min(room, 64<<10))
	buf = append(buf, `{"node":`...)
	buf = append(buf, nodeJSON...)
	buf = append(buf, `,"processes":[`...)
	i := 0
	for ; i < len(procs); i++ {
		b, err := json.Marshal(&procs[i])
		if err != nil {
			return nil, fmt.Errorf("cannot encode process %s: %w", procs[i].ID, err)
		}
		need := len(buf) + 1 + len(b)
		if stopped {
			need += len(restTail) + restFrom[i+1] + len(moreTail) + 20 + 2
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
	if i == len(procs) {
		return append(buf, "]}"...), nil
	}
	if !stopped {
		buf = append(buf, nextTail...)
		buf = append(buf, procs[i-1].ID...) // ids are [A-Za-z0-9_]: nothing to escape
		return append(buf, `"}`...), nil
	}
	buf = append(buf, restTail...)
	for j := i; j < len(procs); j++ {
		if len(buf)+len(procs[j].ID)+3+len(moreTail)+20+2 > room {
			if buf[len(buf)-1] == ',' {
				buf = buf[:len(buf)-1] // after the last id named
			}
			buf = append(buf, moreTail...)
			buf = fmt.Appendf(buf, "%d}", len(procs)-j)
			return buf, nil
		}
		buf = append(buf, '"')
		buf = append(buf, procs[j].ID...)
		buf = append(buf, '"', ',')
	}
	buf[len(buf)-1] = ']'
	return append(buf, '}'), nil
}
