// Package schemagen generates JSON Schemas (draft 2020-12) from Go types
// with invopop/jsonschema. It is apart from package schema so that a
// program that only describes messages (corralctl's schema command, say)
// does not link the validator.
package schemagen

import (
	"encoding/json"
	"fmt"
	"reflect"

	"github.com/invopop/jsonschema"
)

// For returns the JSON Schema (draft 2020-12) of T's JSON encoding,
// pretty-printed; the same T always gives the same bytes. T is usually a
// struct; a pointer type is described by its element.
//
// Generation follows invopop/jsonschema's conventions: property names come
// from json tags; a field is required unless its json tag says omitempty or
// omitzero; `jsonschema:"..."` tags add keywords (enum=a,enum=b, minimum=0,
// description=..., and so on); time.Time is a "date-time" string.
//
// The schema is self-contained: no "$id" is invented from the Go package
// path and nested types are written inline, so the document compiles without
// fetching anything. A type that contains itself (a tree node, say) cannot be
// written inline: its schema is then a local "$ref" to "#/$defs/Name", with
// every struct type it uses under "$defs", named by its Go name without the
// package (so two nested types of the same name from different packages
// would collide there; inline schemas have no such limit).
//
// Properties that T does not list are allowed ("additionalProperties" is
// left out): a child built against a newer version of an event may add a
// field without its events being refused by a node holding the older schema,
// as a Zod object schema strips unknown keys rather than failing. A type that
// wants to refuse them says so with a JSONSchemaExtend method:
//
//	func (Progress) JSONSchemaExtend(s *jsonschema.Schema) {
//		s.AdditionalProperties = jsonschema.FalseSchema
//	}
//
// For panics if T has no JSON Schema (a channel or function field, say),
// which is a programming error.
func For[T any]() json.RawMessage {
	return forType(reflect.TypeFor[T]())
}

// ForValue is For for the dynamic type of v, for building a catalogue of
// schemas from a list of values: ForValue(Progress{}) gives the same bytes
// as For[Progress]().
// It panics if v is nil.
func ForValue(v any) json.RawMessage {
	t := reflect.TypeOf(v)
	if t == nil {
		panic("schemagen.ForValue: nil value has no type")
	}
	return forType(t)
}

func forType(t reflect.Type) json.RawMessage {
	inline := !recursive(t)
	r := &jsonschema.Reflector{
		Anonymous:                 true,
		AllowAdditionalProperties: true,
		// A recursive root must stay in "$defs" to be referred to, so
		// it is not expanded either.
		ExpandedStruct: inline,
		DoNotReference: inline,
	}
	b, err := json.MarshalIndent(r.ReflectFromType(t), "", "  ")
	if err != nil {
		// A reflected schema holds only strings, numbers and maps of them.
		panic(fmt.Sprintf("schemagen.For(%s): cannot marshal schema: %v", t, err))
	}
	return b
}

// recursive reports whether t reaches itself through the types of its
// fields, elements or pointers, in which case writing every type inline
// would never end. It errs towards yes (it also follows unexported embedded
// fields, which encoding/json may skip); a yes only costs "$defs".
func recursive(t reflect.Type) bool {
	const (
		visiting = 1
		done     = 2
	)
	state := map[reflect.Type]int{}
	var walk func(reflect.Type) bool
	walk = func(t reflect.Type) bool {
		for {
			switch t.Kind() {
			case reflect.Pointer, reflect.Slice, reflect.Array, reflect.Map:
				t = t.Elem()
				continue
			}
			break
		}
		if t.Kind() != reflect.Struct {
			return false
		}
		switch state[t] {
		case visiting:
			return true
		case done:
			return false
		}
		state[t] = visiting
		for i := range t.NumField() {
			f := t.Field(i)
			if (f.IsExported() || f.Anonymous) && walk(f.Type) {
				return true
			}
		}
		state[t] = done
		return false
	}
	return walk(t)
}
