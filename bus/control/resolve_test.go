package control

import (
	"errors"
	"strings"
	"testing"

	"github.com/corral-run/corral/api"
)

func TestPick(t *testing.T) {
	ps := []api.ManagedProcess{
		{ID: "proc_uos1aaaaaaaaaaaa", Name: "enc", Node: "a", Status: api.StatusRunning, Instance: "enc/0"},
		{ID: "proc_uos2bbbbbbbbbbbb", Name: "enc", Node: "b", Status: api.StatusRunning},
		{ID: "proc_uos2cccccccccccc", Name: "enc", Node: "b", Status: api.StatusStopped},
		{ID: "proc_xyzzzzzzzzzzzzzz", Name: "tick", Node: "a", Status: api.StatusCrashed},
	}
	for _, tc := range []struct{ ref, id, err string }{
		{"proc_uos1", "proc_uos1aaaaaaaaaaaa", ""},
		{"uos1", "proc_uos1aaaaaaaaaaaa", ""},
		{"enc/0", "proc_uos1aaaaaaaaaaaa", ""},
		{"uos2", "proc_uos2bbbbbbbbbbbb", ""}, // the running one of two
		{"xyz", "proc_xyzzzzzzzzzzzzzz", ""},  // finished, but the only one
		{"proc_uos", "", `"proc_uos" matches 2 processes: proc_uos1aaaaaaaaaaaa (enc on a, running), proc_uos2bbbbbbbbbbbb (enc on b, running)`},
		{"nope", "", `no such process: nothing matches "nope"`},
		{"enc/1", "", `no such process: nothing matches "enc/1"`},
	} {
		id, err := pick(tc.ref, ps)
		switch {
		case tc.err == "" && (err != nil || id != tc.id):
			t.Errorf("pick(%q) = %q, %v; want %q", tc.ref, id, err, tc.id)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("pick(%q) = %q, %v; want an error saying %q", tc.ref, id, err, tc.err)
		}
	}
	if _, err := pick("proc_uos", ps); !errors.Is(err, ErrBadRequest) {
		t.Errorf("an ambiguous ref: %v, want ErrBadRequest", err)
	}
	if _, err := pick("nope", ps); !errors.Is(err, ErrNotFound) {
		t.Errorf("an unknown ref: %v, want ErrNotFound", err)
	}
}
