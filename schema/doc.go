// Package schema is Corral's event schema registry: it compiles JSON Schemas,
// validates event data against them, and generates schemas from Go types.
//
// Compile turns a JSON Schema document (draft 2020-12 unless the document
// names another draft with "$schema") into a *Schema using the
// santhosh-tekuri/jsonschema validator. A compiled Schema is immutable and
// safe for concurrent use: the node compiles each event schema once, when a
// definition is loaded, and calls Validate for every event on the hot path.
// Compilation never touches the network or the file system: a "$ref" may
// point into the schema itself or at a standard metaschema, and any other
// reference is refused with ErrInvalidSchema.
//
// Validate reports a failure as a *ValidationError (errors.Is(err,
// ErrInvalid)) whose message is one short line naming each failing location
// from the root of the data, for example
//
//	data/percent: got string, want number
//
// Numbers are compared exactly, never rounded through float64; to keep that
// cheap whatever a child sends, a number longer than 100 characters or with
// an exponent beyond ±400 is refused before the validator sees it.
//
// Schemas are generated from Go types by package schema/schemagen
// (invopop/jsonschema), apart so that describing messages does not link the
// validator; MustCompileFor compiles what it generates. Generated schemas
// are self-contained, require every field whose json tag lacks
// omitempty/omitzero, and allow properties the type does not list (see
// schemagen.For for why and how a type can refuse them).
//
// The package imports nothing of Corral's but schema/schemagen. It does not know event
// names, definitions or subjects: the node decides which schema applies to
// which event, and bus/catalog builds the catalogue of Corral's own message
// schemas with schemagen.ForValue.
package schema
