package service

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/corral-run/corral/api"
)

// A request body is exactly one JSON object, or nothing.
func TestDecodeRequestIsStrict(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{`null`, "expected a JSON object, got null"},
		{`[{"name":"x"}]`, "expected a JSON object, got an array"},
		{`"spawn"`, "expected a JSON object, got a string"},
		{`{"metadata":{}} trailing`, "more after the JSON object"},
		{`{"metadata":{}}{"metadata":{}}`, "more after the JSON object"},
		{`{"nmae":"x"}`, `unknown field "nmae"`},
		{`{"metadata":`, "unexpected EOF"},
	} {
		var req api.SpawnRequest
		err := decodeRequest("cannot spawn", []byte(tc.body), &req)
		if !errors.Is(err, api.ErrInvalid) || !strings.HasPrefix(err.Error(), "cannot spawn: bad request body: ") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want a 400 saying %q", tc.body, err, tc.want)
		}
	}
	for _, body := range []string{``, `  `, `{}`, ` {"name":"x","metadata":{"k":[1]}} `} {
		var req api.SpawnRequest
		if err := decodeRequest("cannot spawn", []byte(body), &req); err != nil {
			t.Errorf("%q: %v", body, err)
		}
	}
}

// FuzzDecodeRequest feeds every control request decoder what a hostile
// client could send: it never panics, accepts only a single JSON object
// (or nothing), and what it accepts is what encoding/json reads.
func FuzzDecodeRequest(f *testing.F) {
	for _, seed := range []string{``, `{}`, `null`, `[]`, `{"name":"x","metadata":{"a":1},"env":{"K":"v"},"cwd":"/"}`,
		`{"signal":"TERM"}`, `{"lines":5}`, `{"all":true,"name":"n"}`, `{"processes":"all"}`, `{"name":"x","command":"c","args":["a"]}`,
		`{"a":1} x`, `{"lines":"ten"}`, "\x00", `{"metadata":{"k":"` + strings.Repeat("v", 100) + `"}}`} {
		for kind := range byte(7) {
			f.Add(kind, []byte(seed))
		}
	}
	f.Fuzz(func(t *testing.T, kind byte, body []byte) {
		var v any
		switch kind % 7 {
		case 0:
			v = &api.SpawnRequest{}
		case 1:
			v = &api.StopRequest{}
		case 2:
			v = &api.StopAllRequest{}
		case 3:
			v = &api.ListRequest{}
		case 4:
			v = &api.LogsRequest{}
		case 5:
			v = &api.RegistryRequest{}
		default:
			v = &api.DefinitionInfo{}
		}
		err := decodeRequest("cannot x", body, v)
		trimmed := strings.TrimSpace(string(body))
		if err != nil {
			if !errors.Is(err, api.ErrInvalid) || !strings.HasPrefix(err.Error(), "cannot x: bad request body: ") {
				t.Fatalf("%q: error %v is not a 400 sentence", body, err)
			}
			return
		}
		if trimmed == "" {
			return
		}
		if !json.Valid(body) || trimmed[0] != '{' {
			t.Fatalf("accepted %q, which is not one JSON object", body)
		}
	})
}
