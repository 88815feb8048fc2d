package schemagen_test

import (
	"fmt"

	"github.com/corral-run/corral/schema/schemagen"
)

func ExampleFor() {
	type Progress struct {
		Percent float64 `json:"percent" jsonschema:"minimum=0,maximum=100"`
		Stage   string  `json:"stage,omitempty" jsonschema:"enum=encode,enum=mux"`
	}
	fmt.Printf("%s\n", schemagen.For[Progress]())
	// Output:
	// {
	//   "$schema": "https://json-schema.org/draft/2020-12/schema",
	//   "properties": {
	//     "percent": {
	//       "type": "number",
	//       "maximum": 100,
	//       "minimum": 0
	//     },
	//     "stage": {
	//       "type": "string",
	//       "enum": [
	//         "encode",
	//         "mux"
	//       ]
	//     }
	//   },
	//   "type": "object",
	//   "required": [
	//     "percent"
	//   ]
	// }
}
