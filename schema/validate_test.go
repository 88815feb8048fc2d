package schema

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
)

const progressSchema = `{
  "type": "object",
  "properties": {
    "percent": {"type": "number", "minimum": 0, "maximum": 100},
    "fps": {"type": "integer"},
    "stage": {"enum": ["probe", "encode", "mux"]},
    "label": {"type": ["string", "null"]},
    "owner": {"oneOf": [{"type": "string"}, {"type": "null"}]},
    "output": {
      "type": "object",
      "properties": {"path": {"type": "string", "minLength": 1}},
      "required": ["path"]
    },
    "tags": {"type": "array", "items": {"type": "string"}}
  },
  "required": ["percent"],
  "additionalProperties": false
}`

func TestValidate(t *testing.T) {
	s, err := Compile("progress", []byte(progressSchema))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		data string
		want string // the whole error message; "" for valid data
	}{
		{"valid", `{"percent":50,"fps":30}`, ""},
		{"valid full", `{"percent":0,"fps":1,"stage":"mux","label":null,"owner":"ana","output":{"path":"/a.mp4"},"tags":["x"]}`, ""},
		{"big integer stays exact", `{"percent":100,"fps":9007199254740993}`, ""},
		{"wrong type", `{"percent":"50"}`, "data/percent: got string, want number"},
		{"integer", `{"percent":50,"fps":29.97}`, "data/fps: got number, want integer"},
		{"out of range", `{"percent":101}`, "data/percent: maximum: got 101, want 100"},
		{"missing required", `{"fps":30}`, "data: missing property 'percent'"},
		{"additional property", `{"percent":1,"extra":true}`, "data: additional properties 'extra' not allowed"},
		{"enum", `{"percent":1,"stage":"upload"}`, "data/stage: value must be one of 'probe', 'encode', 'mux'"},
		{"oneOf types merged", `{"percent":1,"owner":7}`, "data/owner: got number, want string or null"},
		{"type list", `{"percent":1,"label":7}`, "data/label: got number, want null or string"},
		{"nested", `{"percent":1,"output":{"path":""}}`, "data/output/path: minLength: got 0, want 1"},
		{"array item", `{"percent":1,"tags":["a",2]}`, "data/tags/1: got number, want string"},
		{"several, sorted", `{"fps":"x","percent":"y"}`, "data/fps: got string, want integer; data/percent: got string, want number"},
		{"more than shown", `{"fps":"x","percent":"y","stage":1,"label":2,"owner":3}`,
			"data/fps: got string, want integer; data/label: got number, want null or string; data/owner: got number, want string or null; and 2 more"},
		{"array data", `[1,2]`, "data: got array, want object"},
		{"string data", `"50"`, "data: got string, want object"},
		{"null data", `null`, "data: got null, want object"},
		{"not JSON", `{"percent":`, "data: not JSON: unexpected EOF"},
		{"trailing data", `{"percent":1} {}`, "data: not JSON: invalid character after top-level value"},
		{"empty", ``, "data: no value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Validate(json.RawMessage(tt.data))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate(%s) = %v, want nil", tt.data, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate(%s) = nil, want %q", tt.data, tt.want)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %q does not wrap ErrInvalid", err)
			}
			var verr *ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("error %T is not a *ValidationError", err)
			}
			if verr.Schema != "progress" {
				t.Errorf("Schema = %q, want %q", verr.Schema, "progress")
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("Validate(%s):\n got %s\nwant %s", tt.data, got, tt.want)
			}
		})
	}
}

func TestValidationErrorViolations(t *testing.T) {
	s, err := Compile("keys", []byte(`{"properties":{"a/b":{"type":"string"},"c~d":{"type":"string"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	err = s.Validate([]byte(`{"a/b":1,"c~d":2}`))
	var verr *ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("Validate = %v, want *ValidationError", err)
	}
	want := []Violation{
		{Location: "/a~1b", Reason: "got number, want string"},
		{Location: "/c~0d", Reason: "got number, want string"},
	}
	if fmt.Sprint(verr.Violations) != fmt.Sprint(want) {
		t.Errorf("Violations = %v, want %v", verr.Violations, want)
	}
}

// TestValidateHonoursSchemaDraft checks that "$schema" selects the draft: in
// draft-07 keywords beside "$ref" are ignored, in 2020-12 they apply.
func TestValidateHonoursSchemaDraft(t *testing.T) {
	const body = `"$defs":{"s":{"type":"string"}},"definitions":{"s":{"type":"string"}},"minLength":5`
	draft7, err := Compile("d7", []byte(`{"$schema":"http://json-schema.org/draft-07/schema#","$ref":"#/definitions/s",`+body+`}`))
	if err != nil {
		t.Fatal(err)
	}
	draft2020, err := Compile("d2020", []byte(`{"$ref":"#/$defs/s",`+body+`}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := draft7.Validate([]byte(`"ab"`)); err != nil {
		t.Errorf("draft-07: %v, want nil", err)
	}
	if err := draft2020.Validate([]byte(`"ab"`)); err == nil {
		t.Errorf("draft 2020-12: nil, want minLength error")
	}
}

func TestValidateFormat(t *testing.T) {
	s, err := Compile("contact", []byte(`{"properties":{"email":{"type":"string","format":"email"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Validate([]byte(`{"email":"ana@example.com"}`)); err != nil {
		t.Errorf("valid email: %v", err)
	}
	err = s.Validate([]byte(`{"email":"ana"}`))
	if err == nil || !strings.HasPrefix(err.Error(), "data/email: 'ana' is not valid email") {
		t.Errorf("invalid email: %v", err)
	}
}

func TestValidateValue(t *testing.T) {
	s, err := Compile("progress", []byte(progressSchema))
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal([]byte(`{"percent":50,"fps":30}`), &v); err != nil {
		t.Fatal(err)
	}
	if err := s.ValidateValue(v); err != nil {
		t.Errorf("ValidateValue(float64 model) = %v", err)
	}
	if err := s.ValidateValue(map[string]any{"percent": 50, "fps": json.Number("30")}); err != nil {
		t.Errorf("ValidateValue(Go numbers) = %v", err)
	}
	err = s.ValidateValue(struct{ Percent int }{50})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "invalid jsonType") {
		t.Errorf("ValidateValue(struct) = %v, want invalid jsonType", err)
	}
}

// TestValidateConcurrent shares one Schema between many goroutines; run it
// with -race.
func TestValidateConcurrent(t *testing.T) {
	s, err := Compile("progress", []byte(progressSchema))
	if err != nil {
		t.Fatal(err)
	}
	const goroutines, rounds = 32, 200
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Go(func() {
			for i := range rounds {
				good := json.RawMessage(fmt.Sprintf(`{"percent":%d,"fps":%d}`, i%101, g))
				if err := s.Validate(good); err != nil {
					errs <- fmt.Errorf("Validate(%s) = %v", good, err)
					return
				}
				bad := json.RawMessage(fmt.Sprintf(`{"percent":"%d"}`, i))
				if err := s.Validate(bad); err == nil || err.Error() != "data/percent: got string, want number" {
					errs <- fmt.Errorf("Validate(%s) = %v", bad, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

const benchSchema = `{"type":"object","properties":{"percent":{"type":"number","minimum":0,"maximum":100},"fps":{"type":"integer"}},"required":["percent","fps"]}`

func BenchmarkValidate(b *testing.B) {
	s, err := Compile("progress", []byte(benchSchema))
	if err != nil {
		b.Fatal(err)
	}
	data := json.RawMessage(`{"percent":50,"fps":30}`)
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Validate(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkValidateParallel(b *testing.B) {
	s, err := Compile("progress", []byte(benchSchema))
	if err != nil {
		b.Fatal(err)
	}
	data := json.RawMessage(`{"percent":50,"fps":30}`)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := s.Validate(data); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkValidateValue(b *testing.B) {
	s, err := Compile("progress", []byte(benchSchema))
	if err != nil {
		b.Fatal(err)
	}
	v := map[string]any{"percent": json.Number("50"), "fps": json.Number("30")}
	b.ReportAllocs()
	for b.Loop() {
		if err := s.ValidateValue(v); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkValidateInvalid(b *testing.B) {
	s, err := Compile("progress", []byte(benchSchema))
	if err != nil {
		b.Fatal(err)
	}
	data := json.RawMessage(`{"percent":"50","fps":30}`)
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Validate(data); err == nil {
			b.Fatal("valid")
		}
	}
}

// FuzzValidate feeds Validate what a misbehaving child might send: it must
// answer nil or a one-line *ValidationError, and never panic.
func FuzzValidate(f *testing.F) {
	s, err := Compile("progress", []byte(progressSchema))
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		`{"percent":50,"fps":30}`, `{"percent":"x"}`, `[]`, `null`, ``, `{"percent":1e400}`,
		`{"percent":1,"output":{"path":""},"tags":[1,{"a":[]}]}`, `{"a/b~c":1}`, "\"\xff\"",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		err := s.Validate(data)
		if err == nil {
			return
		}
		var verr *ValidationError
		if !errors.As(err, &verr) || len(verr.Violations) == 0 {
			t.Fatalf("Validate(%q) = %#v, want *ValidationError with violations", data, err)
		}
		if msg := err.Error(); msg == "" || strings.ContainsAny(msg, "\r\n") {
			t.Fatalf("Validate(%q) message %q is empty or spans lines", data, msg)
		}
	})
}
