package schema

import "github.com/corral-run/corral/schema/schemagen"

// MustCompileFor compiles schemagen.For[T]() under name, and panics if that fails,
// which can only be a bug (in T's jsonschema tags, say). It suits
// package-level variables.
func MustCompileFor[T any](name string) *Schema {
	s, err := Compile(name, schemagen.For[T]())
	if err != nil {
		panic(err)
	}
	return s
}
