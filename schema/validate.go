package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// ErrInvalid is wrapped by every *ValidationError: data that does not
// satisfy its schema (or is not JSON at all).
var ErrInvalid = errors.New("data does not match its schema")

// maxShown is how many violations ValidationError.Error spells out.
const maxShown = 3

// printer renders the validator's error kinds. message.Printer is safe for
// concurrent use once built.
var printer = message.NewPrinter(language.English)

// A Violation is one reason data failed its schema.
type Violation struct {
	// Location is a JSON Pointer (RFC 6901) into the validated data: "" for
	// the data itself, "/percent" for its "percent" member.
	Location string
	// Reason says what is wrong, as "got string, want number" or
	// "missing property 'percent'".
	Reason string
}

// A ValidationError reports why data failed a schema. It wraps ErrInvalid.
type ValidationError struct {
	// Schema is the name the schema was compiled under.
	Schema string
	// Violations lists every failure found, sorted by location, at least one.
	Violations []Violation
}

// Error returns one line naming the first few failing locations from the
// root of the data, which it calls "data", and why each failed:
// "data/percent: got string, want number; data: missing property 'fps'".
// It does not repeat the schema name: the caller knows which event failed.
func (e *ValidationError) Error() string {
	return joinViolations("data", e.Violations)
}

// Unwrap returns ErrInvalid.
func (e *ValidationError) Unwrap() error { return ErrInvalid }

// Validate reports whether data, one JSON value, satisfies the schema. It
// returns nil or a *ValidationError. Numbers are compared exactly (decoded as
// json.Number), so 1e400 or an integer beyond 2^53 is judged as written.
// Empty data is not JSON and fails; pass "null" to validate a null.
//
// Whatever the schema, a number longer than 100 characters or with an
// exponent beyond ±400 fails: checking it exactly could take seconds (no
// float64 comes near these limits).
//
// Validate is safe for concurrent use.
func (s *Schema) Validate(data json.RawMessage) error {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		if len(bytes.TrimSpace(data)) == 0 {
			return s.invalid("", "no value")
		}
		return s.invalid("", "not JSON: "+err.Error())
	}
	return s.ValidateValue(v)
}

// ValidateValue is Validate for data already decoded into Go's JSON model:
// nil, bool, string, json.Number or any Go number, []any and map[string]any
// (as produced by json.Unmarshal into an any, or jsonschema.UnmarshalJSON).
// Other Go values, structs included, fail as "invalid jsonType"; marshal
// them and call Validate instead.
//
// ValidateValue is safe for concurrent use.
func (s *Schema) ValidateValue(v any) error {
	if loc, reason, found := findBadNumber(v); found {
		return s.invalid(pointer(loc), reason)
	}
	err := s.compiled.Validate(v)
	if err == nil {
		return nil
	}
	var verr *jsonschema.ValidationError
	if !errors.As(err, &verr) {
		// The validator documents only *ValidationError; be safe anyway.
		return s.invalid("", oneLine(err.Error()))
	}
	return &ValidationError{Schema: s.name, Violations: violations(verr)}
}

func (s *Schema) invalid(location, reason string) *ValidationError {
	return &ValidationError{Schema: s.name, Violations: []Violation{{Location: location, Reason: reason}}}
}

// violations flattens the validator's tree of errors into its leaves,
// sorted and without duplicates. A few inner nodes say more than their
// leaves and are kept whole: see collect.
func violations(root *jsonschema.ValidationError) []Violation {
	var out []Violation
	collect(root, &out)
	slices.SortFunc(out, func(a, b Violation) int {
		if c := strings.Compare(a.Location, b.Location); c != 0 {
			return c
		}
		return strings.Compare(a.Reason, b.Reason)
	})
	out = slices.Compact(out)
	if len(out) == 0 {
		// Not expected: every failure has a leaf. Fall back to the root.
		out = append(out, violation(root, root.ErrorKind.LocalizedString(printer)))
	}
	return out
}

func collect(e *jsonschema.ValidationError, out *[]Violation) {
	switch k := e.ErrorKind.(type) {
	case *kind.AnyOf, *kind.OneOf:
		// A nullable field is {"oneOf": [{"type": "string"}, {"type":
		// "null"}]}: say "got number, want string or null" once, rather
		// than once per branch.
		if reason, ok := mergeTypes(e); ok {
			*out = append(*out, violation(e, reason))
			return
		}
	case *kind.Contains, *kind.MinContains:
		// The causes are every item that did not match, which is not
		// the problem: too few did.
		*out = append(*out, violation(e, k.LocalizedString(printer)))
		return
	case *kind.FalseSchema:
		*out = append(*out, violation(e, "not allowed"))
		return
	}
	if len(e.Causes) == 0 {
		*out = append(*out, violation(e, oneLine(e.ErrorKind.LocalizedString(printer))))
		return
	}
	for _, c := range e.Causes {
		collect(c, out)
	}
}

// mergeTypes returns "got X, want A or B" when every branch of e failed
// only on its type, at e's location.
func mergeTypes(e *jsonschema.ValidationError) (string, bool) {
	if len(e.Causes) == 0 {
		return "", false
	}
	var got string
	var want []string
	for _, c := range e.Causes {
		t, ok := c.ErrorKind.(*kind.Type)
		if !ok || len(c.Causes) != 0 || !slices.Equal(c.InstanceLocation, e.InstanceLocation) {
			return "", false
		}
		got = t.Got
		for _, w := range t.Want {
			if !slices.Contains(want, w) {
				want = append(want, w)
			}
		}
	}
	return fmt.Sprintf("got %s, want %s", got, strings.Join(want, " or ")), true
}

func violation(e *jsonschema.ValidationError, reason string) Violation {
	return Violation{Location: pointer(e.InstanceLocation), Reason: reason}
}

// pointer renders tokens as a JSON Pointer.
func pointer(tokens []string) string {
	var b strings.Builder
	for _, t := range tokens {
		b.WriteByte('/')
		t = strings.ReplaceAll(t, "~", "~0")
		b.WriteString(strings.ReplaceAll(t, "/", "~1"))
	}
	return b.String()
}

// joinViolations renders up to maxShown violations on one line, each
// location prefixed with root.
func joinViolations(root string, vs []Violation) string {
	var b strings.Builder
	for i, v := range vs {
		if i == maxShown {
			fmt.Fprintf(&b, "; and %d more", len(vs)-maxShown)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(root)
		b.WriteString(v.Location)
		b.WriteString(": ")
		b.WriteString(v.Reason)
	}
	return b.String()
}

// oneLine folds a multi-line message onto one line.
func oneLine(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	return strings.Join(strings.Fields(s), " ")
}
