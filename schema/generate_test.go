package schema

import (
	"bytes"
	"encoding/json"
	"errors"
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

func TestForRoundTrip(t *testing.T) {
	s := MustCompileFor[progress]("progress")
	note := "keyframe"
	good := progress{
		source:  source{Input: "in.mov"},
		Percent: 42.5,
		FPS:     30,
		Stage:   "encode",
		Output:  output{Path: "out.mp4", Codec: "h264"},
		Outputs: []output{{Path: "thumb.webm", Codec: "vp9"}},
		Labels:  map[string]string{"tenant": "a"},
		At:      time.Date(2025, 3, 1, 12, 0, 0, 5, time.UTC),
		Note:    &note,
	}
	data, err := json.Marshal(good)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(data); err != nil {
		t.Fatalf("Validate(marshalled progress) = %v\n%s", err, data)
	}
	if err := s.Validate([]byte(`{"input":"a","percent":1,"stage":"mux","output":{"path":"o","codec":"av1"},"at":"2025-03-01T12:00:00Z","added":"later"}`)); err != nil {
		t.Errorf("Validate(with an unknown property) = %v, want nil", err)
	}

	broken := []struct {
		name   string
		change func(m map[string]any)
		want   string
	}{
		{"wrong type", func(m map[string]any) { m["percent"] = "42" }, "data/percent: got string, want number"},
		{"missing", func(m map[string]any) { delete(m, "stage") }, "data: missing property 'stage'"},
		{"embedded missing", func(m map[string]any) { delete(m, "input") }, "data: missing property 'input'"},
		{"enum", func(m map[string]any) { m["output"].(map[string]any)["codec"] = "mpeg2" }, "data/output/codec: value must be one of 'h264', 'vp9', 'av1'"},
		{"minimum", func(m map[string]any) { m["percent"] = -1 }, "data/percent: minimum: got -1, want 0"},
		{"slice item", func(m map[string]any) { m["outputs"].([]any)[0].(map[string]any)["path"] = "" }, "data/outputs/0/path: minLength: got 0, want 1"},
		{"map value", func(m map[string]any) { m["labels"].(map[string]any)["tenant"] = 1 }, "data/labels/tenant: got number, want string"},
		{"date-time", func(m map[string]any) { m["at"] = "yesterday" }, "data/at: 'yesterday' is not valid date-time"},
	}
	for _, tt := range broken {
		t.Run(tt.name, func(t *testing.T) {
			var m map[string]any
			if err := json.Unmarshal(data, &m); err != nil {
				t.Fatal(err)
			}
			tt.change(m)
			b, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			err = s.Validate(b)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Validate(%s) = %v, want ErrInvalid", b, err)
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("Validate:\n got %s\nwant %s", err, tt.want)
			}
		})
	}
}

func TestForStrict(t *testing.T) {
	s := MustCompileFor[strict]("strict")
	if err := s.Validate([]byte(`{"id":"a"}`)); err != nil {
		t.Errorf("Validate(known) = %v", err)
	}
	err := s.Validate([]byte(`{"id":"a","extra":1}`))
	if err == nil || err.Error() != "data: additional properties 'extra' not allowed" {
		t.Errorf("Validate(extra) = %v, want additional properties error", err)
	}
}

func TestForRecursive(t *testing.T) {
	raw := For[tree]()
	if !strings.Contains(string(raw), `"$ref": "#/$defs/tree"`) {
		t.Fatalf("For[tree] does not refer to its $defs:\n%s", raw)
	}
	s := MustCompileFor[tree]("tree")
	good, _ := json.Marshal(tree{Name: "a", Kids: []*tree{{Name: "b", Kids: []*tree{{Name: "c"}}}}})
	if err := s.Validate(good); err != nil {
		t.Errorf("Validate(%s) = %v", good, err)
	}
	err := s.Validate([]byte(`{"name":"a","kids":[{"name":"b","kids":[{"name":3}]}]}`))
	if err == nil || err.Error() != "data/kids/0/kids/0/name: got number, want string" {
		t.Errorf("Validate(bad grandchild) = %v", err)
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

func TestMustCompileForPanics(t *testing.T) {
	type badTag struct {
		// A pattern the validator cannot compile.
		Name string `json:"name" jsonschema:"pattern=("`
	}
	defer func() {
		r := recover()
		err, ok := r.(error)
		if !ok || !errors.Is(err, ErrInvalidSchema) {
			t.Errorf("recover() = %v, want an ErrInvalidSchema error", r)
		}
	}()
	MustCompileFor[badTag]("bad")
}
