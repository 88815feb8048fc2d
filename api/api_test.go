package api_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/corral-run/corral/api"
)

func TestErrorfReadsAsASentenceAndMatchesItsKind(t *testing.T) {
	cause := errors.New("disk full")
	err := api.Errorf(api.ErrConflict, "cannot define %q: %w", "enc", cause)
	if err.Error() != `cannot define "enc": disk full` {
		t.Errorf("text %q", err)
	}
	if !errors.Is(err, api.ErrConflict) || !errors.Is(err, cause) || errors.Is(err, api.ErrInvalid) {
		t.Errorf("errors.Is does not follow the kind and the cause: %v", err)
	}
	wrapped := fmt.Errorf("outer: %w", err)
	for kind, code := range map[error]int{api.ErrInvalid: 400, api.ErrNotPermitted: 403, api.ErrNotFound: 404,
		api.ErrConflict: 409, api.ErrNoCapacity: 503, api.ErrInternal: 500} {
		if got := api.Code(api.Errorf(kind, "x")); got != code {
			t.Errorf("Code(%v) = %d, want %d", kind, got, code)
		}
		if got := api.KindOf(code); got != kind {
			t.Errorf("KindOf(%d) = %v, want %v", code, got, kind)
		}
	}
	if api.Code(wrapped) != 409 || api.Code(errors.New("plain")) != 500 || api.KindOf(418) != api.ErrInternal {
		t.Error("Code or KindOf of an unknown error")
	}
}

func TestParseSignal(t *testing.T) {
	for in, want := range map[string]string{"SIGTERM": "SIGTERM", "term": "SIGTERM", " kill ": "SIGKILL", "9": "SIGKILL", "12": "SIGUSR2"} {
		sig, err := api.ParseSignal(in)
		if err != nil || api.SignalName(sig) != want {
			t.Errorf("ParseSignal(%q) = %v, %v; want %s", in, sig, err, want)
		}
	}
	for _, bad := range []string{"", "FOO", "0", "65", "15abc", "-1"} {
		if _, err := api.ParseSignal(bad); !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), "unknown signal") {
			t.Errorf("ParseSignal(%q): %v, want an invalid-signal error", bad, err)
		}
	}
}

func TestDefinitionRedacted(t *testing.T) {
	d := api.DefinitionInfo{Name: "x", Env: map[string]string{
		"DB_PASSWORD": "hunter2", "API_TOKEN": "t0k", "AWS_SECRET_ACCESS_KEY": "k",
		"DATABASE_URL": "postgres://app:hunter2@db:5432/app", "CACHE": "redis://tok3n@cache:6379",
		"MODE": "fast",
	}}
	r := d.Redacted()
	if r.Env["MODE"] != "fast" || r.Env["DB_PASSWORD"] != "xxxxx" || r.Env["API_TOKEN"] != "xxxxx" || r.Env["AWS_SECRET_ACCESS_KEY"] != "xxxxx" ||
		r.Env["DATABASE_URL"] != "postgres://app:xxxxx@db:5432/app" || r.Env["CACHE"] != "redis://xxxxx@cache:6379" {
		t.Errorf("redacted env %v", r.Env)
	}
	if d.Env["DB_PASSWORD"] != "hunter2" {
		t.Error("Redacted changed the definition it was called on")
	}
}
