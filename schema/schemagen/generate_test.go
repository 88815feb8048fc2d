package schemagen

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/invopop/jsonschema"
)

type output struct {
	Path  string `json:"path" jsonschema:"minLength=1"`
	Codec string `json:"codec" jsonschema:"enum=h264,enum=vp9,enum=av1"`
}

type source struct {
	Input string `json:"input"`
}

type progress struct {
	source                     // embedded: its fields are progress's own, as in encoding/json
	Percent  float64           `json:"percent" jsonschema:"minimum=0,maximum=100"`
	FPS      int               `json:"fps,omitempty"`
	Stage    string            `json:"stage" jsonschema:"enum=probe,enum=encode,enum=mux"`
	Output   output            `json:"output"`
	Outputs  []output          `json:"outputs,omitempty"`
	Labels   map[string]string `json:"labels,omitempty"`
	At       time.Time         `json:"at"`
	Note     *string           `json:"note,omitempty"`
	Ignored  string            `json:"-"`
	internal int
}

// strict refuses properties it does not list.
type strict struct {
	ID string `json:"id"`
}

func (strict) JSONSchemaExtend(s *jsonschema.Schema) {
	s.AdditionalProperties = jsonschema.FalseSchema
}

// tree contains itself, so it cannot be written inline.
type tree struct {
	Name string  `json:"name"`
	Kids []*tree `json:"kids,omitempty"`
}

func TestFor(t *testing.T) {
	raw := For[progress]()
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("For is not JSON: %v\n%s", err, raw)
	}
	get := func(path ...string) any {
		var v any = doc
		for _, p := range path {
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[p]
		}
		return v
	}
	str := func(v any) string {
		b, _ := json.Marshal(v)
		return string(b)
	}

	checks := []struct {
		path []string
		want string
	}{
		{[]string{"$schema"}, `"https://json-schema.org/draft/2020-12/schema"`},
		{[]string{"type"}, `"object"`},
		{[]string{"required"}, `["input","percent","stage","output","at"]`},
		{[]string{"properties", "input", "type"}, `"string"`},
		{[]string{"properties", "percent"}, `{"maximum":100,"minimum":0,"type":"number"}`},
		{[]string{"properties", "fps", "type"}, `"integer"`},
		{[]string{"properties", "stage", "enum"}, `["probe","encode","mux"]`},
		{[]string{"properties", "output", "type"}, `"object"`},
		{[]string{"properties", "output", "required"}, `["path","codec"]`},
		{[]string{"properties", "output", "properties", "codec", "enum"}, `["h264","vp9","av1"]`},
		{[]string{"properties", "outputs", "items", "properties", "path", "minLength"}, `1`},
		{[]string{"properties", "labels", "additionalProperties"}, `{"type":"string"}`},
		{[]string{"properties", "at"}, `{"format":"date-time","type":"string"}`},
		{[]string{"properties", "note"}, `{"type":"string"}`},
		// Self-contained and open: nothing to fetch, extra properties allowed.
		{[]string{"$id"}, `null`},
		{[]string{"$defs"}, `null`},
		{[]string{"additionalProperties"}, `null`},
		{[]string{"properties", "output", "additionalProperties"}, `null`},
		{[]string{"properties", "Ignored"}, `null`},
		{[]string{"properties", "internal"}, `null`},
	}
	for _, c := range checks {
		if got := str(get(c.path...)); got != c.want {
			t.Errorf("%s = %s, want %s", strings.Join(c.path, "."), got, c.want)
		}
	}
	if strings.Contains(string(raw), `"$ref"`) {
		t.Errorf("For[progress] has a $ref:\n%s", raw)
	}
	if !bytes.Equal(raw, For[progress]()) {
		t.Error("For[progress] differs between calls")
	}
	if !strings.HasPrefix(string(raw), "{\n  \"$schema\"") {
		t.Errorf("For[progress] is not indented:\n%s", raw)
	}
}

func TestForValue(t *testing.T) {
	want := For[progress]()
	if got := ForValue(progress{}); !bytes.Equal(got, want) {
		t.Errorf("ForValue(progress{}) differs from For[progress]:\n%s", got)
	}
	if got := ForValue(&progress{}); !bytes.Equal(got, want) {
		t.Errorf("ForValue(&progress{}) differs from For[progress]:\n%s", got)
	}
	defer func() {
		if recover() == nil {
			t.Error("ForValue(nil) did not panic")
		}
	}()
	ForValue(nil)
}

func TestForRecursiveRefersToDefs(t *testing.T) {
	raw := For[tree]()
	if !strings.Contains(string(raw), `"$ref": "#/$defs/tree"`) {
		t.Fatalf("For[tree] does not refer to its $defs:\n%s", raw)
	}
}

func TestRecursive(t *testing.T) {
	type flat struct{ A, B string }
	type pair struct{ L, R flat } // flat twice is not a cycle
	type viaMap struct {
		M map[string]viaMap
	}
	tests := []struct {
		t    reflect.Type
		want bool
	}{
		{reflect.TypeFor[flat](), false},
		{reflect.TypeFor[pair](), false},
		{reflect.TypeFor[progress](), false},
		{reflect.TypeFor[tree](), true},
		{reflect.TypeFor[*tree](), true},
		{reflect.TypeFor[[]tree](), true},
		{reflect.TypeFor[viaMap](), true},
		{reflect.TypeFor[int](), false},
	}
	for _, tt := range tests {
		if got := recursive(tt.t); got != tt.want {
			t.Errorf("recursive(%s) = %v, want %v", tt.t, got, tt.want)
		}
	}
}
