package schema_test

import (
	"encoding/json"
	"fmt"

	"github.com/corral-run/corral/schema"
)

func ExampleCompile() {
	s, err := schema.Compile("encoder.progress", json.RawMessage(`{
		"type": "object",
		"properties": {
			"percent": {"type": "number", "minimum": 0, "maximum": 100},
			"fps": {"type": "integer"}
		},
		"required": ["percent"]
	}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(s.Validate(json.RawMessage(`{"percent": 50, "fps": 30}`)))
	fmt.Println(s.Validate(json.RawMessage(`{"percent": "50"}`)))
	fmt.Println(s.Validate(json.RawMessage(`{"fps": 29.97}`)))
	// Output:
	// <nil>
	// data/percent: got string, want number
	// data: missing property 'percent'; data/fps: got number, want integer
}

func ExampleCompile_invalid() {
	_, err := schema.Compile("encoder.progress", json.RawMessage(`{"type": "float"}`))
	fmt.Println(err)
	// Output:
	// cannot compile schema "encoder.progress": schema/type: got string, want array; schema/type: value must be one of 'array', 'boolean', 'integer', 'null', 'number', 'object', 'string'
}
