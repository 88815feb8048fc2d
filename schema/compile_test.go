package schema

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

func TestCompile(t *testing.T) {
	tests := []struct {
		name   string
		schema string
		err    string // substring of the error after the common prefix; "" for success
	}{
		{"object", `{"type":"object","properties":{"percent":{"type":"number"}},"required":["percent"]}`, ""},
		{"boolean schema", `true`, ""},
		{"local ref", `{"$defs":{"pct":{"type":"number"}},"properties":{"percent":{"$ref":"#/$defs/pct"}}}`, ""},
		{"draft-07", `{"$schema":"http://json-schema.org/draft-07/schema#","definitions":{"a":{"type":"string"}},"$ref":"#/definitions/a"}`, ""},
		{"metaschema ref", `{"$ref":"https://json-schema.org/draft/2020-12/schema"}`, ""},
		{"bad type", `{"type":12}`, "schema/type: got number, want array"},
		{"bad nested keyword", `{"properties":{"a":{"minLength":"x"}}}`, "schema/properties/a/minLength: got string, want integer"},
		{"bad regexp", `{"pattern":"("}`, "schema/pattern: '(' is not valid regex"},
		{"missing local ref", `{"$ref":"#/$defs/nope"}`, `json-pointer in "#/$defs/nope" not found`},
		{"remote ref", `{"$ref":"https://example.com/pct.json"}`, `cannot load "https://example.com/pct.json": only references into the schema itself`},
		{"relative ref", `{"$ref":"pct.json"}`, `cannot load "pct.json"`},
		{"remote metaschema", `{"$schema":"https://example.com/meta","type":"object"}`, `cannot load "https://example.com/meta"`},
		{"not JSON", `{"type":`, "not JSON"},
		{"trailing data", `{} {}`, "not JSON"},
		{"empty", ``, "empty document"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Compile("progress", []byte(tt.schema))
			if tt.err == "" {
				if err != nil {
					t.Fatalf("Compile: %v", err)
				}
				if s.Name() != "progress" {
					t.Errorf("Name() = %q, want %q", s.Name(), "progress")
				}
				return
			}
			if err == nil {
				t.Fatalf("Compile succeeded, want error containing %q", tt.err)
			}
			if !errors.Is(err, ErrInvalidSchema) {
				t.Errorf("error %q does not wrap ErrInvalidSchema", err)
			}
			msg := err.Error()
			if prefix := `cannot compile schema "progress": `; !strings.HasPrefix(msg, prefix) {
				t.Errorf("error %q does not start with %q", msg, prefix)
			}
			if !strings.Contains(msg, tt.err) {
				t.Errorf("error %q does not contain %q", msg, tt.err)
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("error %q spans several lines", msg)
			}
		})
	}
}

// TestCompileFetchesNothing checks that references which the default loader
// would follow (a local file, an HTTP server) are refused without being read.
func TestCompileFetchesNothing(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write([]byte(`{"type":"number"}`))
	}))
	defer srv.Close()

	file := filepath.Join(t.TempDir(), "pct.json")
	if err := os.WriteFile(file, []byte(`{"type":"number"}`), 0o600); err != nil {
		t.Fatal(err)
	}

	for _, ref := range []string{srv.URL + "/pct.json", "file://" + filepath.ToSlash(file)} {
		_, err := Compile("progress", []byte(`{"properties":{"percent":{"$ref":"`+ref+`"}}}`))
		if !errors.Is(err, ErrInvalidSchema) {
			t.Errorf("$ref %s: err = %v, want ErrInvalidSchema", ref, err)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("HTTP server got %d requests, want 0", n)
	}
}

func TestSchemaMarshalJSON(t *testing.T) {
	s, err := Compile("progress", []byte("{\n  \"type\": \"object\"\n}"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `{"type":"object"}`; got != want {
		t.Errorf("MarshalJSON = %s, want %s", got, want)
	}
}
