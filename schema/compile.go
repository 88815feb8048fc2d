package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// ErrInvalidSchema is matched (errors.Is) by every error Compile returns.
var ErrInvalidSchema = errors.New("invalid schema")

// CompileError is the error of Compile: which schema, and what is wrong
// with it. It matches ErrInvalidSchema.
type CompileError struct {
	Name   string // the name given to Compile
	Reason string // what is wrong, e.g. "schema/type: got 3, want string"
}

func (e *CompileError) Error() string {
	return fmt.Sprintf("cannot compile schema %q: %s", e.Name, e.Reason)
}

// Is matches ErrInvalidSchema.
func (e *CompileError) Is(target error) bool { return target == ErrInvalidSchema }

// errRefused is what the loader answers for every URL that is neither the
// schema being compiled nor a standard metaschema (those two are served
// before the loader is asked).
var errRefused = errors.New("only references into the schema itself and standard metaschemas are allowed")

// location is the URL under which a schema document is compiled. It is a
// constant, not derived from the name, so that any name compiles; relative
// references resolve against it (under base) and reach refusingLoader.
const (
	base     = "corral:///"
	location = base + "schema.json"
)

// A Schema is a compiled JSON Schema. It is immutable: any number of
// goroutines may call its methods at once.
type Schema struct {
	name     string
	source   json.RawMessage // compact copy of the document Compile was given
	compiled *jsonschema.Schema
}

// Compile compiles the JSON Schema document raw. The document uses draft
// 2020-12 unless its "$schema" names another draft (4, 6, 7, 2019-09).
// Format assertions are on, as in a Zod schema: a string with "format":
// "email" that is not an email address fails validation. name identifies the
// schema in errors and is not interpreted.
//
// Nothing is fetched: a "$ref" to anything other than a part of the schema
// itself or a standard metaschema is an error. Numbers in the document are
// held to the same limits as in Validate's data. Every error is a
// *CompileError (errors.Is ErrInvalidSchema) and reads
// `cannot compile schema "<name>": …`.
func Compile(name string, raw json.RawMessage) (*Schema, error) {
	s, err := compile(name, raw)
	if err != nil {
		return nil, &CompileError{Name: name, Reason: err.Error()}
	}
	return s, nil
}

func compile(name string, raw json.RawMessage) (*Schema, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, errors.New("empty document")
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("not JSON: %v", err)
	}
	if loc, reason, found := findBadNumber(doc); found {
		return nil, fmt.Errorf("schema%s: %s", pointer(loc), reason)
	}
	var source bytes.Buffer
	if err := json.Compact(&source, raw); err != nil {
		return nil, fmt.Errorf("not JSON: %v", err)
	}

	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	c.UseLoader(refusingLoader{})
	if err := c.AddResource(location, doc); err != nil {
		return nil, err
	}
	compiled, err := c.Compile(location)
	if err != nil {
		return nil, describeCompileError(err)
	}
	return &Schema{name: name, source: source.Bytes(), compiled: compiled}, nil
}

// Name returns the name the schema was compiled under.
func (s *Schema) Name() string { return s.name }

// MarshalJSON returns the schema document, compacted, so that a Schema can
// be embedded in a JSON reply (a definition listing its events, say).
func (s *Schema) MarshalJSON() ([]byte, error) {
	return bytes.Clone(s.source), nil
}

// refusingLoader is the compiler's only way to fetch a document, and it
// fetches none. The default loader would read file:// URLs.
type refusingLoader struct{}

func (refusingLoader) Load(url string) (any, error) { return nil, errRefused }

// describeCompileError turns the validator's errors, some of them spread
// over several lines, into one line.
func describeCompileError(err error) error {
	var invalid *jsonschema.SchemaValidationError
	if errors.As(err, &invalid) {
		var verr *jsonschema.ValidationError
		if errors.As(invalid.Err, &verr) {
			return errors.New(joinViolations("schema", violations(verr)))
		}
	}
	var load *jsonschema.LoadURLError
	if errors.As(err, &load) {
		return fmt.Errorf("cannot load %q: %v", strings.TrimPrefix(load.URL, base), load.Err)
	}
	// Other errors quote locations as absolute URLs, which the author
	// of the schema never wrote.
	return errors.New(oneLine(strings.ReplaceAll(err.Error(), location, "")))
}
