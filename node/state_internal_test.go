package node

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/corral-run/corral/api"
)

// A record written over a longer one is read back whole, and a file where
// a whole record is followed by what another writer left (the tail of a
// longer record) reads as that first record, never as corrupt.
func TestSaveOverwritesInPlace(t *testing.T) {
	st, err := openStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	long := record{ID: "proc_aaaaaaaaaaaaaaaa", PID: 42, Definition: api.DefinitionInfo{Name: "w"},
		Metadata: json.RawMessage(`{"note":"` + strings.Repeat("x", 500) + `"}`)}
	if err := st.create(long); err != nil {
		t.Fatal(err)
	}
	fi0, _ := os.Stat(st.path(long.ID))
	short := long
	short.Metadata = nil
	short.Status, short.Error = api.StatusCrashed, "exit 1"
	if err := st.save(short); err != nil {
		t.Fatal(err)
	}
	fi1, _ := os.Stat(st.path(long.ID))
	if !os.SameFile(fi0, fi1) {
		t.Error("save replaced the record's file instead of writing over it")
	}
	b, _ := os.ReadFile(st.path(long.ID))
	var plain record
	if err := json.Unmarshal(b, &plain); err != nil {
		t.Fatalf("a record written over a longer one is not plain JSON: %v", err)
	}
	if plain.Status != api.StatusCrashed || strings.Contains(string(b), "xxx") {
		t.Errorf("read back %+v", plain)
	}

	// Another writer's longer record left its tail after this one.
	whole, _ := json.Marshal(short)
	tail, _ := json.Marshal(long)
	mixed := append(whole, tail[len(whole):]...)
	if err := os.WriteFile(st.path(long.ID), mixed, 0o600); err != nil {
		t.Fatal(err)
	}
	recs, errs := st.load()
	if len(errs) != 0 || len(recs) != 1 || recs[0].Status != api.StatusCrashed {
		t.Fatalf("load: %+v, %v", recs, errs)
	}

	// A save of a record that does not exist yet creates it.
	other := short
	other.ID = "proc_bbbbbbbbbbbbbbbb"
	if err := st.save(other); err != nil {
		t.Fatal(err)
	}
	if recs, errs := st.load(); len(errs) != 0 || len(recs) != 2 {
		t.Fatalf("load: %d records, %v", len(recs), errs)
	}
}
