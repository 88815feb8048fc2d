package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus/control"
)

// Bounds of the logs endpoint.
const (
	defaultLogLines = 100
	maxLogLines     = 10000
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
	if !follow {
		reply, err := g.ctl.Logs(r.Context(), id, lines)
		if err != nil {
			return err
		}
		writeJSON(w, r, http.StatusOK, reply)
		return nil
	}
	// An unknown process is a plain 404, before the stream starts.
	if _, err := g.ctl.Get(r.Context(), id); err != nil {
		return err
	}
	release, err := g.acquireStream()
	if err != nil {
		return err
	}
	defer release()
	sw := startSSE(w)
	if err := sw.flush(); err != nil {
		return nil
	}
	ctx := r.Context()
	end, err := followLogs(ctx, g.ctl, id, control.FollowOptions{Tail: lines}, sw)
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

// logFollower is what followLogs needs of the control client.
type logFollower interface {
	Follow(ctx context.Context, id string, opts control.FollowOptions, fn func(control.Output) error) (api.LogEnd, error)
	Get(ctx context.Context, id string) (api.ManagedProcess, error)
}

// followLogs sends process id's output to sw as the node publishes it
// (control.Follow): an event "log" per batch of whole lines, a comment
// where output was missed, until the process has ended, when it returns
// the process (or what is known of its end, if it cannot be asked), or
// ctx ends.
func followLogs(ctx context.Context, src logFollower, id string, opts control.FollowOptions, sw *sseWriter) (api.ManagedProcess, error) {
	var lines control.Lines
	send := func(b []byte) error {
		if len(b) > 0 {
			sw.event(0, "log", b[:len(b)-1]) // the last newline ends the event's data
		}
		return sw.flush()
	}
	end, err := src.Follow(ctx, id, opts, func(o control.Output) error {
		switch {
		case o.Truncated:
			sw.comment("older lines left out: " + api.TruncatedWhy)
		case o.Missed < 0:
			sw.comment("some output may be missing: its node began counting anew (it restarted)")
		case o.Missed > 0:
			sw.comment(strconv.FormatInt(o.Missed, 10) + " bytes of output were missed: they came faster than they could be passed on")
		}
		return send(lines.Add(o.Data))
	})
	if err != nil {
		return api.ManagedProcess{}, err
	}
	if err := send(lines.Rest()); err != nil {
		return api.ManagedProcess{}, err
	}
	mp, err := src.Get(ctx, id)
	if err != nil {
		mp = api.ManagedProcess{ID: id, Status: end.Status, ExitCode: end.ExitCode, Error: end.Error}
	}
	return mp, nil
}
