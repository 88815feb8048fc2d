package relay

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// Message ids are of one length, never repeat, and a counter that wraps
// draws a new prefix.
func TestMsgIDs(t *testing.T) {
	g := newMsgIDs()
	g.seq, g.n, g.next = 3656158440062976-2*chunkStrings, chunkStrings, chunkStrings // 36^10, the wrap, is a chunk away
	seen := map[string]bool{}
	prefixes := map[string]bool{}
	for range 3 * chunkStrings {
		id, _ := g.get()
		if len(id) != idPrefixLen+idSeqLen || seen[id] {
			t.Fatalf("id %q (length %d, seen before %v)", id, len(id), seen[id])
		}
		seen[id] = true
		prefixes[id[:idPrefixLen]] = true
	}
	if len(prefixes) != 2 {
		t.Errorf("%d prefixes across the wrap, want 2", len(prefixes))
	}
}

// Reply subjects carry their counter, which get returns too.
func TestCounterStrings(t *testing.T) {
	g := &counterStrings{prefix: "_INBOX.x.", width: 4}
	for want := range uint64(3 * chunkStrings) {
		s, n := g.get()
		got, err := strconv.ParseUint(strings.TrimPrefix(s, "_INBOX.x."), 36, 64)
		if n != want || err != nil || got != want || len(s) != len("_INBOX.x.")+4 {
			t.Fatalf("get = %q %d, want counter %d", s, n, want)
		}
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
