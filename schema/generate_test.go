package schema

import (
	"encoding/json"
	"errors"
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
