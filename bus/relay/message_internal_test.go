package relay

import (
	"fmt"
	"testing"
)

// Message ids are of one length, never repeat, and a counter that wraps
// draws a new prefix.
func TestMsgIDs(t *testing.T) {
	g := newMsgIDs()
	g.seq = maxIDSeq - 3*idChunk/2
	seen := map[string]bool{}
	prefixes := map[string]bool{}
	for range 3 * idChunk {
		id := g.id()
		if len(id) != idLen || seen[id] {
			t.Fatalf("id %q (length %d, seen before %v)", id, len(id), seen[id])
		}
		seen[id] = true
		prefixes[id[:idPrefixLen]] = true
	}
	if len(prefixes) != 2 {
		t.Errorf("%d prefixes across the wrap, want 2", len(prefixes))
	}
}

// The subject cache returns each subject as bus builds it, and stops
// growing at maxSubjects.
func TestSubjectCache(t *testing.T) {
	var c subjectCache
	if got := c.get("enc", "progress"); got != "process.enc.progress" {
		t.Errorf("event subject %q", got)
	}
	if got := c.get("enc", statsKey); got != "process.enc.stats" {
		t.Errorf("stats subject %q", got)
	}
	for i := range maxSubjects + 10 {
		name := fmt.Sprintf("n%d", i)
		if got := c.get(name, "e"); got != "process."+name+".e" {
			t.Fatalf("subject %q", got)
		}
	}
	if n := len(*c.m.Load()); n != maxSubjects {
		t.Errorf("%d subjects cached, want %d", n, maxSubjects)
	}
}
