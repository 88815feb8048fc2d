package gateway

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus/control"
)

// fakeFollower hands over output as a node would, then the process's end.
type fakeFollower struct {
	outputs []control.Output
	getErr  error
}

func (f *fakeFollower) Follow(_ context.Context, id string, _ control.FollowOptions, fn func(control.Output) error) (api.LogEnd, error) {
	for _, o := range f.outputs {
		if err := fn(o); err != nil {
			return api.LogEnd{}, err
		}
	}
	code := 0
	return api.LogEnd{ProcessID: id, Status: api.StatusStopped, ExitCode: &code}, nil
}

func (f *fakeFollower) Get(_ context.Context, id string) (api.ManagedProcess, error) {
	return api.ManagedProcess{ID: id, Name: "p", Status: api.StatusStopped}, f.getErr
}

// A followed log goes out as events of whole lines (a line is sent once
// it is finished, the unfinished last one at the end), with a comment
// where output was missed, and ends with the process.
func TestFollowLogsSendsWholeLines(t *testing.T) {
	for _, getErr := range []error{nil, errors.New("gone")} {
		rec := httptest.NewRecorder()
		sw := startSSE(rec)
		src := &fakeFollower{getErr: getErr, outputs: []control.Output{
			{Data: []byte("tail 1\ntail 2\n"), Tail: true},
			{Data: []byte("half")},
			{Data: []byte(" done\nnext\nunfin")},
			{Missed: 42},
			{Data: []byte("ished")},
		}}
		mp, err := followLogs(context.Background(), src, "proc_x", control.FollowOptions{Tail: 2}, sw)
		if err != nil || mp.ID != "proc_x" || mp.Status != api.StatusStopped {
			t.Fatalf("followLogs = %+v, %v", mp, err)
		}
		want := "retry: 1000\n\n" +
			"event: log\ndata: tail 1\ndata: tail 2\n\n" +
			"event: log\ndata: half done\ndata: next\n\n" +
			": 42 bytes of output were missed: they came faster than they could be passed on\n\n" +
			"event: log\ndata: unfinished\n\n"
		if got := rec.Body.String(); got != want {
			t.Errorf("the stream:\n%s\nwant:\n%s", got, want)
		}
		if strings.Contains(rec.Body.String(), "event: end") {
			t.Error("followLogs sent the end itself")
		}
	}
}
