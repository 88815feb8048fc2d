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

var outMsgs = sync.Pool{New: func() any {
	o := &outMsg{}
	o.msg.Header = nats.Header{
		bus.HeaderNode:        o.vals[0:1:1],
		bus.HeaderProcessID:   o.vals[1:2:2],
		bus.HeaderProcessName: o.vals[2:3:3],
		bus.HeaderMsgID:       o.vals[3:4:4],
	}
	return o
}}

// newOutMsg returns a message for rep's headers, with message id msgID.
func (r *Relay) newOutMsg(subject string, rep *node.Report, msgID string, data []byte) *outMsg {
	o := outMsgs.Get().(*outMsg)
	o.msg.Subject, o.msg.Data = subject, data
	o.vals = [4]string{r.cfg.NodeID, rep.ProcessID, rep.Name, msgID}
	return o
}

// free returns o to the pool, keeping nothing of the report alive.
func (o *outMsg) free() {
	o.msg.Subject, o.msg.Data, o.vals = "", nil, [4]string{}
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

// msgIDs makes the Nats-Msg-Id of the messages the relay makes up: a
// prefix drawn at random for each relay (the first 12 characters of a new
// NUID generator's ids, crypto-random base62) and a counter, 10 base-36
// digits. So ids
// are unique across nodes and restarts, as NUIDs are, and JetStream
// de-duplicates by them as before. They are made idChunk at a time in
// one string, and each id is a slice of it.
type msgIDs struct {
	mu     sync.Mutex
	prefix string
	seq    uint64
	chunk  string
	next   int // offset of the next id in chunk
}

const (
	idPrefixLen = 12
	idSeqLen    = 10
	idLen       = idPrefixLen + idSeqLen
	idChunk     = 256
)

func newMsgIDs() *msgIDs { return &msgIDs{prefix: nuid.New().Next()[:idPrefixLen]} }

// id returns a new message id.
func (g *msgIDs) id() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.next == len(g.chunk) {
		g.refill()
	}
	s := g.chunk[g.next : g.next+idLen]
	g.next += idLen
	return s
}

// maxIDSeq is where the counter wraps (36^10, past 3·10^15 ids): a new
// prefix is drawn then, as NUID does.
const maxIDSeq = 3656158440062976

func (g *msgIDs) refill() {
	b := make([]byte, 0, idChunk*idLen)
	var num [16]byte
	for range idChunk {
		if g.seq == maxIDSeq {
			g.prefix, g.seq = nuid.New().Next()[:idPrefixLen], 0
		}
		b = append(b, g.prefix...)
		digits := strconv.AppendUint(num[:0], g.seq, 36)
		for range idSeqLen - len(digits) {
			b = append(b, '0')
		}
		b = append(b, digits...)
		g.seq++
	}
	g.chunk, g.next = string(b), 0
}
