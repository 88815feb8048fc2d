package node

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/corral-run/corral/api"
	"golang.org/x/sys/unix"
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

	// A record past a page is not written over in place (a write of
	// several pages can be cut between them): it replaces the file whole.
	big := short
	big.Metadata = json.RawMessage(`{"note":"` + strings.Repeat("y", 2*inPlaceMax) + `"}`)
	if err := st.save(big); err != nil {
		t.Fatal(err)
	}
	fi2, _ := os.Stat(st.path(long.ID))
	if os.SameFile(fi1, fi2) {
		t.Error("a record past a page was written over in place")
	}
	// Nor is anything written over a file past a page, even by a short
	// record: it is replaced.
	if err := st.save(short); err != nil {
		t.Fatal(err)
	}
	fi3, _ := os.Stat(st.path(long.ID))
	if os.SameFile(fi2, fi3) || fi3.Size() > inPlaceMax {
		t.Errorf("a short record written over a file of %d bytes: now %d bytes, same file %v", fi2.Size(), fi3.Size(), os.SameFile(fi2, fi3))
	}
	if recs, errs := st.load(); len(errs) != 0 || len(recs) != 1 || recs[0].Status != api.StatusCrashed {
		t.Fatalf("load: %+v, %v", recs, errs)
	}
	// What is not a regular file in a record's place is refused, at once
	// (a FIFO without a reader: ENXIO; with one, "not a regular file").
	fifo := st.path("proc_ffffffffffffffff")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	ff := short
	ff.ID = "proc_ffffffffffffffff"
	if err := st.save(ff); err == nil {
		t.Errorf("save over a FIFO: %v", err)
	}
	// A FIFO among the records is skipped, said, and holds nothing up.
	if _, errs := st.load(); len(errs) != 1 || !strings.Contains(errs[0].Error(), "not a regular file") {
		t.Errorf("load with a FIFO among the records: %v", errs)
	}
	_ = os.Remove(fifo)

	// Nor is a symbolic link followed, dangling or not: the record is
	// refused, and what it points to is left as it was.
	target := filepath.Join(t.TempDir(), "elsewhere")
	if err := os.WriteFile(target, []byte("untouched"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, to := range []string{target, filepath.Join(t.TempDir(), "missing")} {
		sl := short
		sl.ID = "proc_ssssssssssssssss"
		_ = os.Remove(st.path(sl.ID))
		if err := os.Symlink(to, st.path(sl.ID)); err != nil {
			t.Fatal(err)
		}
		if err := st.save(sl); err == nil {
			t.Errorf("save over a symbolic link to %s succeeded", to)
		}
		if err := st.create(sl); err == nil {
			t.Errorf("create over a symbolic link to %s succeeded", to)
		}
	}
	if b, _ := os.ReadFile(target); string(b) != "untouched" {
		t.Errorf("a record was written through a symbolic link: %q", b)
	}
	_ = os.Remove(st.path("proc_ssssssssssssssss"))

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

// An empty record (a reserved record a node did not fill) is removed at
// load and said, not read as a record nor moved aside as corrupt.
func TestLoadRemovesEmptyRecords(t *testing.T) {
	st, err := openStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	f, err := st.reserve("proc_eeeeeeeeeeeeeeee")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	recs, errs := st.load()
	if len(recs) != 0 || len(errs) != 1 || !errors.As(errs[0], new(emptyRecord)) {
		t.Errorf("load: %v, %v; want no record and one emptyRecord", recs, errs)
	}
	if entries, _ := os.ReadDir(st.dir); len(entries) != 0 {
		t.Errorf("left in the state directory: %v", entries)
	}
}
