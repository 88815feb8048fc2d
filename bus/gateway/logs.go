package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/corral-run/corral/api"
)

// Bounds of the logs endpoint.
const (
	defaultLogLines = 100
	maxLogLines     = 10000
	// followWindow is how many lines each poll of a followed log reads:
	// more than a process writes between two polls, or lines are missed
	// (the stream says so).
	followWindow = 1000
	// statusEvery is how many polls pass between two looks at the
	// process's status (has it ended?).
	statusEvery = 4
	// followErrors is how many polls in a row may fail before the stream
	// gives up.
	followErrors = 20
)

func (g *Gateway) logs(w http.ResponseWriter, r *http.Request) error {
	id, err := processID(r)
	if err != nil {
		return err
	}
	q, err := query(r, "lines", "follow")
	if err != nil {
		return err
	}
	lines := defaultLogLines
	if s := q.Get("lines"); s != "" {
		if lines, err = strconv.Atoi(s); err != nil || lines < 1 || lines > maxLogLines {
			return errorf(http.StatusBadRequest, "lines=%q is out of range (expected 1 to %d)", s, maxLogLines)
		}
	}
	follow, err := boolParam(q, "follow")
	if err != nil {
		return err
	}
	text, err := g.ctl.Logs(r.Context(), id, lines)
	if err != nil {
		return err
	}
	if !follow {
		writeJSON(w, r, http.StatusOK, api.LogsReply{ProcessID: id, Log: text})
		return nil
	}
	release, err := g.acquireStream()
	if err != nil {
		return err
	}
	defer release()
	sw := startSSE(w)
	if first := splitLines(text); len(first) > 0 {
		sw.event(0, "log", []byte(strings.Join(first, "\n")))
	}
	if err := sw.flush(); err != nil {
		return nil
	}
	ctx := r.Context()
	end, err := followLogs(ctx, g.ctl, id, g.cfg.LogPoll, splitLines(text), func(fresh []string, gap bool) error {
		if gap {
			sw.comment("lines were missed: the process wrote more than " + strconv.Itoa(followWindow) + " between two reads")
		}
		sw.event(0, "log", []byte(strings.Join(fresh, "\n")))
		return sw.flush()
	})
	switch {
	case ctx.Err() != nil:
	case err != nil:
		data, _ := json.Marshal(ErrorBody{Error: err.Error(), Code: statusOf(err)})
		sw.event(0, "error", data)
	default:
		data, _ := json.Marshal(end)
		sw.event(0, "end", data)
	}
	_ = sw.flush()
	return nil
}

// logSource is what followLogs reads: the control client.
type logSource interface {
	Logs(ctx context.Context, id string, lines int) (string, error)
	Get(ctx context.Context, id string) (api.ManagedProcess, error)
}

// followLogs calls send with the lines process id adds to its output, as
// it writes them, until the process has ended (it returns the process
// then, once its last lines are sent) or ctx ends; seen are the last lines
// already sent.
//
// It polls the tail of the log (the logs request) every `every` and sends
// what is new: the node does not stream log lines over NATS yet. When it
// does (a follow request on corral.proc.<id>), this is the one function to
// replace. Polling has two limits: a process that writes more than
// followWindow lines between two polls loses lines (send is told: gap),
// and identical lines that fill the window cannot be told apart, so they
// are seen once.
func followLogs(ctx context.Context, src logSource, id string, every time.Duration, seen []string, send func(fresh []string, gap bool) error) (api.ManagedProcess, error) {
	t := time.NewTicker(every)
	defer t.Stop()
	failures := 0
	for poll := 1; ; poll++ {
		select {
		case <-ctx.Done():
			return api.ManagedProcess{}, ctx.Err()
		case <-t.C:
		}
		var ended *api.ManagedProcess
		if poll%statusEvery == 0 {
			mp, err := src.Get(ctx, id)
			if errors.Is(err, api.ErrNotFound) {
				return api.ManagedProcess{}, err
			}
			if err == nil && mp.Status.Finished() {
				ended = &mp // read the log once more: its last lines
			}
		}
		text, err := src.Logs(ctx, id, followWindow)
		switch {
		case errors.Is(err, api.ErrNotFound) || err != nil && ctx.Err() != nil:
			return api.ManagedProcess{}, err
		case err != nil:
			if failures++; failures >= followErrors {
				return api.ManagedProcess{}, err
			}
			continue
		}
		failures = 0
		cur := splitLines(text)
		if fresh, gap := newLines(seen, cur); len(fresh) > 0 {
			if err := send(fresh, gap); err != nil {
				return api.ManagedProcess{}, err
			}
		}
		seen = cur
		if ended != nil {
			return *ended, nil
		}
	}
}

// newLines returns what cur, a later tail of the same log as prev, adds
// to it: cur is prev less its first lines, plus the new ones. gap says
// no overlap was found (more was written than a tail holds): all of cur
// is returned. A last line of prev that has grown since (it was being
// written) comes again, whole.
func newLines(prev, cur []string) (fresh []string, gap bool) {
	n := len(prev)
	if n == 0 {
		return cur, false
	}
	for s := 0; s < n; s++ {
		m := n - s // lines in common
		if m > len(cur) || !slices.Equal(prev[s:n-1], cur[:m-1]) {
			continue
		}
		switch last := prev[n-1]; {
		case cur[m-1] == last:
			return cur[m:], false
		case strings.HasPrefix(cur[m-1], last):
			return cur[m-1:], false
		}
	}
	return cur, true
}

// splitLines splits a log tail into its lines.
func splitLines(text string) []string {
	text = strings.TrimRight(text, "\n")
	if text == "" {
		return nil
	}
	return strings.Split(text, "\n")
}
