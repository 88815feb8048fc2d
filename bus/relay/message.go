package relay

import (
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"

	"github.com/corral-run/corral/bus"
	"github.com/corral-run/corral/node"
)

// What a relayed event costs the relay is kept to no allocation: the
// message and its header are reused (outMsg), subjects are made once per
// name and event (subjectCache), and message ids are cut from a string
// made for many (msgIDs). What nats.go allocates to encode the header is
// left (PublishMsg takes a map).

// outMsg is a message carrying the headers of a report about a process.
// Its header's values are slices of vals, so setting them allocates
// nothing; it goes back to outMsgs once handed to NATS. A message that must
// outlive Publish is copied (keep).
type outMsg struct {
	msg  nats.Msg
	vals [4]string // node, process id, process name, message id
}

// init makes o's header, whose values are o.vals.
func (o *outMsg) init() {
	o.msg.Header = nats.Header{
		bus.HeaderNode:        o.vals[0:1:1],
		bus.HeaderProcessID:   o.vals[1:2:2],
		bus.HeaderProcessName: o.vals[2:3:3],
		bus.HeaderMsgID:       o.vals[3:4:4],
	}
}

// set sets o's subject, data and header values.
func (o *outMsg) set(nodeID, subject string, rep *node.Report, msgID string, data []byte) {
	o.msg.Subject, o.msg.Data = subject, data
	o.vals = [4]string{nodeID, rep.ProcessID, rep.Name, msgID}
}

// clear keeps nothing of the report alive.
func (o *outMsg) clear() { o.msg.Subject, o.msg.Data, o.vals = "", nil, [4]string{} }

var outMsgs = sync.Pool{New: func() any {
	o := &outMsg{}
	o.init()
	return o
}}

// newOutMsg returns a message for rep's headers, with message id msgID.
func (r *Relay) newOutMsg(subject string, rep *node.Report, msgID string, data []byte) *outMsg {
	o := outMsgs.Get().(*outMsg)
	o.set(r.cfg.NodeID, subject, rep, msgID, data)
	return o
}

// free returns o to the pool.
func (o *outMsg) free() {
	o.clear()
	outMsgs.Put(o)
}

// subjectCache holds process.<name>.<event> (and process.<name>.stats)
// for the names and events seen, so that a relayed event does not build
// its subject. Reads take no lock: a new pair copies the map.
type subjectCache struct {
	m  atomic.Pointer[map[subjectKey]string]
	mu sync.Mutex // held by writers
}

type subjectKey struct{ name, event string }

// maxSubjects bounds the cache: past it, subjects are built each time.
const maxSubjects = 4096

// statsKey is the event part of the key of process.<name>.stats ("stats"
// is reserved: no child event has that name).
const statsKey = node.ReservedEventName

// get returns the subject of an event (or, with event statsKey, of a
// process's stats).
func (c *subjectCache) get(name, event string) string {
	if m := c.m.Load(); m != nil {
		if s, ok := (*m)[subjectKey{name, event}]; ok {
			return s
		}
	}
	s := bus.ProcessEventSubject(name, event)
	if event == statsKey {
		s = bus.ProcessStatsSubject(name)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.m.Load()
	if old != nil && len(*old) >= maxSubjects {
		return s
	}
	m := make(map[subjectKey]string, 1+lenOf(old))
	if old != nil {
		for k, v := range *old {
			m[k] = v
		}
	}
	m[subjectKey{name, event}] = s
	c.m.Store(&m)
	return s
}

func lenOf(m *map[subjectKey]string) int {
	if m == nil {
		return 0
	}
	return len(*m)
}

// counterStrings hands out strings made of a prefix and a counter, width
// base-36 digits (with leading zeros): message ids and reply subjects.
// They are made chunk at a time in one string, and each is a slice of it,
// so handing one out allocates nothing.
type counterStrings struct {
	width int
	renew func() string // the prefix once the counter wraps; nil: the same

	mu     sync.Mutex
	prefix string
	seq    uint64 // the counter of the first string of chunk
	chunk  string
	next   int // index of the next string in chunk
	n      int // strings in chunk
}

// chunkStrings is how many strings a chunk holds.
const chunkStrings = 256

// get returns a new string and its counter.
func (g *counterStrings) get() (string, uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.next == g.n {
		g.refill()
	}
	size := len(g.prefix) + g.width
	i := g.next
	g.next++
	return g.chunk[i*size : (i+1)*size], g.seq + uint64(i)
}

// refill makes the next chunk; it starts again at counter 0 (with a new
// prefix, when renew is set) where the counter would need more digits.
func (g *counterStrings) refill() {
	g.seq += uint64(g.n)
	limit := uint64(1)
	for range g.width {
		limit *= 36
	}
	if g.seq+chunkStrings > limit {
		g.seq = 0
		if g.renew != nil {
			g.prefix = g.renew()
		}
	}
	b := make([]byte, 0, chunkStrings*(len(g.prefix)+g.width))
	var num [16]byte
	for i := range uint64(chunkStrings) {
		b = append(b, g.prefix...)
		digits := strconv.AppendUint(num[:0], g.seq+i, 36)
		for range g.width - len(digits) {
			b = append(b, '0')
		}
		b = append(b, digits...)
	}
	g.chunk, g.next, g.n = string(b), 0, chunkStrings
}

// Message ids (Nats-Msg-Id) the relay makes up: a prefix drawn at random
// for each relay (the first 12 characters of a new NUID generator's ids,
// crypto-random base62) and a counter of 10 base-36 digits. So they are
// unique across nodes and restarts, as NUIDs are, and JetStream
// de-duplicates by them as before; once the counter wraps (after 36^10
// ids) the prefix is drawn again, as NUID does.
const (
	idPrefixLen = 12
	idSeqLen    = 10
)

func newMsgIDs() *counterStrings {
	renew := func() string { return nuid.New().Next()[:idPrefixLen] }
	return &counterStrings{width: idSeqLen, renew: renew, prefix: renew()}
}
