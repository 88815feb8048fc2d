package main

import (
	"bytes"
	"flag"
	"os"
	"testing"

	"github.com/corral-run/corral/bus/catalog"
)

var update = flag.Bool("update", false, "write schemas.json from the catalog")

// The schemas corralctl prints are the catalog's, generated from the Go
// types that are sent.
func TestSchemasAreTheCatalog(t *testing.T) {
	want := catalog.All()
	if *update {
		var b bytes.Buffer
		if err := printJSON(&b, want); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile("schemas.json", b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := schemas()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("schemas.json has %d schemas, the catalog %d: run go test ./cmd/ctl -run TestSchemasAreTheCatalog -update", len(got), len(want))
	}
	for i := range want {
		// What corralctl prints of each, byte for byte.
		var g, w bytes.Buffer
		if err := printJSON(&g, got[i].Schema); err != nil {
			t.Fatal(err)
		}
		if err := printJSON(&w, want[i].Schema); err != nil {
			t.Fatal(err)
		}
		if got[i].Name != want[i].Name || !bytes.Equal(g.Bytes(), w.Bytes()) {
			t.Errorf("schema %d: schemas.json has %q, the catalog %q (or their schemas differ): run go test ./cmd/ctl -run TestSchemasAreTheCatalog -update", i, got[i].Name, want[i].Name)
		}
	}
}
