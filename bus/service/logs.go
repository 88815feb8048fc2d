package service

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/node"
)

// handleLogs answers corral.proc.<id>.logs: the last lines (100 by
// default, 10000 at most: more are as many), or those written within
// SinceMs. A reply that would not fit the server's max_payload holds the
// newest lines that do, and says so (Truncated), as the tail of a follow
// does (fitLog).
func (s *Service) handleLogs(sup Supervisor, id string, r replier, data []byte) {
	what := fmt.Sprintf("cannot read logs of %q", id)
	var req api.LogsRequest
	if err := decodeRequest(what, data, &req); err != nil {
		respondError(r, err)
		return
	}
	if req.SinceMs < 0 || req.SinceMs > maxSinceMs {
		respondError(r, api.Errorf(api.ErrInvalid, "%s: sinceMs %d is out of range (0 to %d, ten years)", what, req.SinceMs, int64(maxSinceMs)))
		return
	}
	opts := node.TailOptions{Lines: min(max(req.Lines, 0), node.MaxTailLines), Since: time.Duration(req.SinceMs) * time.Millisecond}
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.RequestTimeout)
	defer cancel()
	snap, err := sup.Tail(ctx, id, opts)
	if err != nil {
		respondError(r, err)
		return
	}
	text := strings.TrimRight(snap.Tail, "\n")
	if text != "" {
		text += "\n"
	}
	b, err := fitLog(text, int(s.nc.MaxPayload()), func(log string, cut bool) []byte {
		b, _ := json.Marshal(api.LogsReply{ProcessID: id, Log: log, Truncated: snap.Truncated || cut})
		return b
	})
	if err != nil {
		respondError(r, fmt.Errorf("%s: %w", what, err))
		return
	}
	_ = r.Respond(b)
}

// fitLog returns the reply encode makes of log, or when that is larger
// than a message may be (maxPayload, the server's max_payload, less some
// room), of the newest lines of log that fit, cut true. When not even the
// last line fits alone, it keeps the end of that line that does (from
// the start of a character). It fails, 503, when not even a reply
// without log fits.
//
// encode is called about twice for each time the number of lines
// doubles (a binary search): a JSON string may be six times longer than
// its text, so only an encoding tells what fits.
func fitLog(log string, maxPayload int, encode func(log string, cut bool) []byte) ([]byte, error) {
	limit := maxPayload - min(1024, maxPayload/8)
	if b := encode(log, false); len(b) <= limit {
		return b, nil
	}
	fits := func(from int) bool { return len(encode(log[from:], true)) <= limit }
	var starts []int // of every line but the first
	for i := range len(log) - 1 {
		if log[i] == '\n' {
			starts = append(starts, i+1)
		}
	}
	if k := sort.Search(len(starts), func(k int) bool { return fits(starts[k]) }); k < len(starts) {
		return encode(log[starts[k]:], true), nil
	}
	last := 0
	if len(starts) > 0 {
		last = starts[len(starts)-1]
	}
	runeStart := func(i int) int { // the first character's start at i or after
		for i < len(log) && !utf8.RuneStart(log[i]) {
			i++
		}
		return i
	}
	from := runeStart(last + sort.Search(len(log)-last, func(k int) bool { return fits(runeStart(last + k)) }))
	if b := encode(log[from:], true); len(b) <= limit {
		return b, nil
	}
	return nil, api.Errorf(api.ErrNoCapacity, "a reply does not fit in a message of the server's max_payload (%d bytes)", maxPayload)
}
