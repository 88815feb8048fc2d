package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/corral-run/corral/internal/await"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// emitterDefinition runs e2e/testdata/emitter, which records what was acked.
const emitterDefinition = `
[processes.emitter]
command = %q
stop_timeout = "5s"
heartbeat_timeout = "10s"
env = { EMITTER_DIR = %q }

[processes.emitter.events.tick]
type = "object"
required = ["seq"]
properties = { seq = { type = "integer" } }
`

// TestNodeKill9LosesNoAckedEvent: three children emit acked events; the
// node is killed with SIGKILL and started again. The children survive, are
// re-adopted with the same ids and pids, keep emitting, and every event
// acked before and after the crash is in CORRAL_EVENTS exactly once.
func TestNodeKill9LosesNoAckedEvent(t *testing.T) {
	ackDir := t.TempDir()
	n := startNodeWith(t, fmt.Sprintf(emitterDefinition, bin("emitter"), ackDir))
	var procs []process
	for i := 0; i < 3; i++ {
		procs = append(procs, n.spawn(t, "emitter", ""))
	}
	for _, p := range procs {
		waitAcked(t, ackDir, p.ID, 50)
	}

	n.kill9(t)
	for _, p := range procs {
		if gone(p.PID) {
			t.Fatalf("child %s died with the node", p.ID)
		}
	}
	before := map[string]int{}
	for _, p := range procs {
		before[p.ID] = len(acked(t, ackDir, p.ID))
	}

	n2 := n.restart(t)
	listed := map[string]process{}
	for _, p := range n2.listAll(t) {
		listed[p.ID] = p
	}
	for _, p := range procs {
		got, ok := listed[p.ID]
		if !ok || got.PID != p.PID || got.Status != "running" {
			t.Errorf("after restart %s is %+v, want running with pid %d", p.ID, got, p.PID)
		}
		waitAcked(t, ackDir, p.ID, before[p.ID]+50) // emitting again, through the new node
	}
	n2.ctl(t, "stop", "--all", "--name", "emitter")

	stored := storedTicks(t, n2.url)
	for _, p := range procs {
		seqs := acked(t, ackDir, p.ID)
		counts := stored[p.ID]
		for _, seq := range seqs {
			if c := counts[seq]; c != 1 {
				t.Errorf("%s: acked event %d is stored %d times", p.ID, seq, c)
			}
		}
		for seq, c := range counts {
			if c > 1 {
				t.Errorf("%s: event %d stored %d times", p.ID, seq, c)
			}
		}
		t.Logf("%s: %d acked (%d before the crash), %d stored", p.ID, len(seqs), before[p.ID], len(counts))
	}
	reconnected := storedSubjectCount(t, n2.url, "process.reconnected")
	if reconnected != 3 {
		t.Errorf("%d process.reconnected in the stream, want 3", reconnected)
	}
}

// acked reads the seqs an emitter recorded as acked.
func acked(t testing.TB, dir, id string) []int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, id+".acked"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var seqs []int
	for _, l := range strings.Split(string(b), "\n") {
		seq, _, _ := strings.Cut(l, " ") // "<seq> <unix ms>"
		if n, err := strconv.Atoi(seq); err == nil {
			seqs = append(seqs, n)
		}
	}
	return seqs
}

func waitAcked(t testing.TB, dir, id string, n int) {
	t.Helper()
	if !await.Poll(waitEvent, func() bool { return len(acked(t, dir, id)) >= n }) {
		t.Fatalf("%s acked %d events, want %d", id, len(acked(t, dir, id)), n)
	}
}

// storedTicks counts, per process and seq, the tick events in CORRAL_EVENTS.
func storedTicks(t testing.TB, url string, opts ...nats.Option) map[string]map[int]int {
	t.Helper()
	out := map[string]map[int]int{}
	readStream(t, url, "process.emitter.tick", func(m jetstream.Msg) {
		var ev struct {
			ProcessID string `json:"processId"`
			Seq       int    `json:"seq"`
		}
		if err := json.Unmarshal(m.Data(), &ev); err != nil {
			t.Errorf("stored event %s: %v", m.Data(), err)
			return
		}
		if out[ev.ProcessID] == nil {
			out[ev.ProcessID] = map[int]int{}
		}
		out[ev.ProcessID][ev.Seq]++
	}, opts...)
	return out
}

func storedSubjectCount(t testing.TB, url, subject string) int {
	n := 0
	readStream(t, url, subject, func(jetstream.Msg) { n++ })
	return n
}

// readStream calls fn for every message of CORRAL_EVENTS on subject.
func readStream(t testing.TB, url, subject string, fn func(jetstream.Msg), opts ...nats.Option) {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, "CORRAL_EVENTS")
	if err != nil {
		t.Fatalf("no CORRAL_EVENTS stream: %v", err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		t.Fatal(err)
	}
	total := info.State.Subjects[subject]
	if total == 0 {
		return
	}
	// One ephemeral pull consumer, read in batches. A read can fail while
	// the stream's leader moves (after a node loss or a partition): it
	// goes on from the next sequence on a new consumer, for as long as ctx
	// lasts.
	var next uint64 // the stream sequence to read from; 0: the start
	for read := uint64(0); read < total; {
		cfg := jetstream.ConsumerConfig{FilterSubject: subject, AckPolicy: jetstream.AckNonePolicy,
			InactiveThreshold: time.Minute, MemoryStorage: true, Replicas: 1}
		if next > 0 {
			cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, next
		}
		cons, err := st.CreateConsumer(ctx, cfg)
		for err == nil && read < total {
			var batch jetstream.MessageBatch
			if batch, err = cons.Fetch(int(min(total-read, 1000)), jetstream.FetchMaxWait(5*time.Second)); err != nil {
				break
			}
			n := 0
			for m := range batch.Messages() {
				if md, merr := m.Metadata(); merr == nil {
					next = md.Sequence.Stream + 1
				}
				fn(m)
				read++
				n++
			}
			if err = batch.Error(); err == nil && n == 0 {
				err = fmt.Errorf("no message within 5 s")
			}
		}
		if cons != nil {
			_ = st.DeleteConsumer(ctx, cons.CachedInfo().Name)
		}
		if err != nil {
			if ctx.Err() != nil {
				t.Fatalf("read %d of %d messages on %s: %v", read, total, subject, err)
			}
			t.Logf("reading %s again from sequence %d after %d of %d: %v", subject, next, read, total, err)
			time.Sleep(500 * time.Millisecond)
		}
	}
}
