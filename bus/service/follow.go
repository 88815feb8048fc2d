package service

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus"
	"github.com/corral-run/corral/node"
)

// Following a process's output: corral.proc.<id>.follow and
// corral.logs.<id>.
//
// A follower subscribes to corral.logs.<id>, then asks
// corral.proc.<id>.follow with a token of its own (api.FollowRequest).
// The node gives it a lease, and the tail it asked for with the offset
// where that tail ends (api.FollowReply); from then on it publishes the
// process's output on corral.logs.<id>, each message with the offset
// where it begins (bus.HeaderLogOffset), so the follower keeps what
// begins at the tail's end or later, once, and sees a gap as one. The
// follower renews its lease by asking again every RenewMs; a lease
// lasts three times as long, so a follower that died stops costing
// anything soon after (one that stops asks for its release at once).
// Once the process has ended the node publishes a
// last message (bus.HeaderLogEnd) after its last output, and stops.
//
// While nobody follows a process, nothing of its output goes on the bus,
// and the node's cost is one atomic load per read (node/follow.go).
//
// Per followed process there is one follow: the leases (MaxFollowers of
// them at most, MaxPerRequester for one requester), the output
// waiting to be published (bounded: beyond FollowLimits.QueueBytes it is
// dropped, and the followers see the gap in the offsets, so a slow bus
// never holds up the child), and one goroutine that publishes it, at most
// FollowLimits.RateBytes a second, in messages that fit the server's
// max_payload, and that expires the leases.

// FollowLimits bound what following costs a node. Zero fields take the
// defaults noted.
type FollowLimits struct {
	// Renew is how often a follower renews its lease (default 2 s); a
	// lease lasts three times as long.
	Renew time.Duration
	// MaxFollowers bounds the leases on one process (default 32): more
	// are refused, 503.
	MaxFollowers int
	// MaxPerRequester bounds the leases one user holds on one process
	// (default a quarter of MaxFollowers, at least 1; at most
	// MaxFollowers): more are refused, 503, so that one user cannot take
	// them all. Who is a user: see userOf.
	MaxPerRequester int
	// QueueBytes bounds the output waiting to be published, per process
	// (default 1 MiB).
	QueueBytes int
	// RateBytes bounds the output published a second, per process
	// (default 4 MiB).
	RateBytes int
}

// Defaults of FollowLimits.
const (
	DefaultFollowRenew  = 2 * time.Second
	DefaultMaxFollowers = 32
	DefaultFollowQueue  = 1 << 20
	DefaultFollowRate   = 4 << 20
)

// maxLogMessage bounds one message of output; the server's max_payload
// bounds it too.
const maxLogMessage = 64 << 10

// maxSinceMs bounds FollowRequest.SinceMs and LogsRequest.SinceMs: ten
// years.
const maxSinceMs = 10 * 365 * 24 * 3600 * 1000

func (l *FollowLimits) setDefaults() {
	if l.Renew <= 0 {
		l.Renew = DefaultFollowRenew
	}
	if l.MaxFollowers <= 0 {
		l.MaxFollowers = DefaultMaxFollowers
	}
	if l.MaxPerRequester <= 0 {
		l.MaxPerRequester = max(l.MaxFollowers/4, 1)
	}
	l.MaxPerRequester = min(l.MaxPerRequester, l.MaxFollowers)
	if l.QueueBytes <= 0 {
		l.QueueBytes = DefaultFollowQueue
	}
	if l.RateBytes <= 0 {
		l.RateBytes = DefaultFollowRate
	}
}

// follow is one followed process: its leases, and its output on its way
// to corral.logs.<id>. It is the process's node.LogSink.
type follow struct {
	s    *Service
	id   string
	name string
	wake chan struct{} // output or an end is waiting

	// Guarded by s.mu: leases are taken and expire under it.
	leases map[string]lease // by follower

	mu     sync.Mutex
	chunks []logChunk // output waiting, in order
	queued int
	epoch  int64       // what the offsets count from (node.LogSnapshot)
	next   int64       // where the output handed over ends (dropped or not)
	end    *api.LogEnd // the process has ended: publish it after the output

	// The publishing goroutine's.
	windowStart time.Time
	windowBytes int
}

// lease is one follower's: the user who asked for it (userOf; "" for
// none), and when it ends unless renewed.
type lease struct {
	user  string
	until time.Time
}

type logChunk struct {
	epoch, off int64
	data       []byte
}

var _ node.LogSink = (*follow)(nil)

// LogOutput implements node.LogSink: it queues a copy of data, or drops
// it when the queue is full.
func (f *follow) LogOutput(data []byte, epoch, offset int64) {
	f.mu.Lock()
	f.epoch, f.next = epoch, offset+int64(len(data))
	if f.end != nil || f.queued+len(data) > f.s.cfg.Follow.QueueBytes {
		f.mu.Unlock()
		return // dropped: the followers see the gap
	}
	f.chunks = append(f.chunks, logChunk{epoch: epoch, off: offset, data: bytes.Clone(data)})
	f.queued += len(data)
	f.mu.Unlock()
	f.poke()
}

func (f *follow) poke() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// run publishes the output as it comes, and ends once the process has
// ended, every lease has expired, or the service closes.
func (f *follow) run() {
	defer f.s.wg.Done()
	sweep := time.NewTicker(f.s.cfg.Follow.Renew)
	defer sweep.Stop()
	for {
		select {
		case <-f.s.ctx.Done():
			return
		case <-f.wake:
		case <-sweep.C:
		}
		f.mu.Lock()
		chunks, end, epoch, next := f.chunks, f.end, f.epoch, f.next
		f.chunks, f.queued = nil, 0
		f.mu.Unlock()
		f.publish(chunks)
		if end != nil {
			f.publishEnd(end, epoch, next)
			f.s.unfollow(f, true)
			return
		}
		if f.s.expire(f, time.Now()) {
			return
		}
	}
}

// publish sends the chunks, merged where they are contiguous, in messages
// that fit; what the rate does not allow is dropped.
func (f *follow) publish(chunks []logChunk) {
	limit := min(maxLogMessage, int(f.s.nc.MaxPayload())-4096)
	if limit <= 0 {
		limit = max(int(f.s.nc.MaxPayload())/2, 1)
	}
	var msg []byte
	var epoch, off int64
	flush := func(n int) {
		f.publishOutput(epoch, off, msg[:n])
		msg, off = msg[n:], off+int64(n)
	}
	for _, c := range chunks {
		if len(msg) > 0 && (c.epoch != epoch || c.off != off+int64(len(msg))) {
			flush(len(msg)) // a gap: what was dropped
		}
		if len(msg) == 0 {
			msg, epoch, off = c.data, c.epoch, c.off
		} else {
			msg = append(msg, c.data...)
		}
		for len(msg) > limit { // at a line's end where one fits
			cut := bytes.LastIndexByte(msg[:limit], '\n') + 1
			if cut == 0 {
				cut = limit
			}
			flush(cut)
		}
	}
	if len(msg) > 0 {
		flush(len(msg))
	}
}

// publishOutput publishes one message of output, if the rate allows.
func (f *follow) publishOutput(epoch, off int64, data []byte) {
	now := time.Now()
	if now.Sub(f.windowStart) >= time.Second {
		f.windowStart, f.windowBytes = now, 0
	}
	if f.windowBytes+len(data) > f.s.cfg.Follow.RateBytes {
		return // dropped: the followers see the gap
	}
	f.windowBytes += len(data)
	m := f.message(epoch, off)
	m.Data = data
	_ = f.s.nc.PublishMsg(m) // a failure is a gap too
}

// publishEnd publishes the last message: the process has ended, its
// output at end.
func (f *follow) publishEnd(e *api.LogEnd, epoch, end int64) {
	m := f.message(epoch, end)
	m.Header.Set(bus.HeaderLogEnd, "true")
	m.Data, _ = json.Marshal(e)
	_ = f.s.nc.PublishMsg(m)
}

func (f *follow) message(epoch, off int64) *nats.Msg {
	m := nats.NewMsg(bus.LogSubject(f.id))
	m.Header.Set(bus.HeaderNode, f.s.cfg.NodeID)
	m.Header.Set(bus.HeaderProcessID, f.id)
	m.Header.Set(bus.HeaderProcessName, f.name)
	m.Header.Set(bus.HeaderLogOffset, strconv.FormatInt(off, 10))
	m.Header.Set(bus.HeaderLogEpoch, strconv.FormatInt(epoch, 10))
	return m
}

// lease gives follower a lease on the output of process id (name) for
// requester, or renews the one it has (renewed). It fails when the
// process has as many followers as it may, or requester as many of them
// as one may hold, or the service is closing.
func (s *Service) lease(id, name, follower, user string, now time.Time) (f *follow, renewed bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, false, fmt.Errorf("cannot follow %q: node %s is shutting down", id, s.cfg.NodeID)
	}
	until := now.Add(3 * s.cfg.Follow.Renew)
	f = s.follows[id]
	if f == nil {
		f = &follow{s: s, id: id, name: name, wake: make(chan struct{}, 1), leases: map[string]lease{}}
		s.follows[id] = f
		s.wg.Add(1)
		go f.run()
	}
	if l, ok := f.leases[follower]; ok {
		l.until = until
		f.leases[follower] = l
		return f, true, nil
	}
	if len(f.leases) >= s.cfg.Follow.MaxFollowers {
		return nil, false, api.Errorf(api.ErrNoCapacity, "cannot follow %q: it has %d followers, the most a process may have", id, len(f.leases))
	}
	if user != "" {
		held := 0
		for _, l := range f.leases {
			if l.user == user {
				held++
			}
		}
		if held >= s.cfg.Follow.MaxPerRequester {
			return nil, false, api.Errorf(api.ErrNoCapacity, "cannot follow %q: requester %s holds %d of its leases, the most one requester may hold (of %d in all), so that others can follow it too; end one of its follows first",
				id, user, held, s.cfg.Follow.MaxFollowers)
		}
	}
	f.leases[follower] = lease{user: user, until: until}
	return f, false, nil
}

// release ends follower's lease at once.
func (s *Service) release(f *follow, follower string) {
	s.mu.Lock()
	delete(f.leases, follower)
	s.mu.Unlock()
	f.poke() // it may be the last: the goroutine looks
}

// expire ends the leases that have run out; when none is left it stops
// following the process and reports true.
func (s *Service) expire(f *follow, now time.Time) bool {
	s.mu.Lock()
	for k, l := range f.leases {
		if now.After(l.until) {
			delete(f.leases, k)
		}
	}
	left := len(f.leases)
	s.mu.Unlock()
	if left > 0 {
		return false
	}
	return s.unfollow(f, false)
}

// unfollow stops following f's process: unless a lease came meanwhile
// (and the process has not ended), it is forgotten and the supervisor
// stops handing it the output. It reports whether it stopped.
func (s *Service) unfollow(f *follow, ended bool) bool {
	s.mu.Lock()
	if !ended && len(f.leases) > 0 {
		s.mu.Unlock()
		return false
	}
	if s.follows[f.id] == f {
		delete(s.follows, f.id)
	}
	sup := s.sup
	s.mu.Unlock()
	if sup != nil {
		sup.UnfollowLogs(f.id, f)
	}
	return true
}

// followEnded has the follow of a process that ended, if any, publish
// its end after its last output (which the supervisor has handed over
// before it reported the end).
func (s *Service) followEnded(r node.Report) {
	s.mu.Lock()
	f := s.follows[r.ProcessID]
	s.mu.Unlock()
	if f == nil {
		return
	}
	e := &api.LogEnd{ProcessID: r.ProcessID}
	switch p := r.Payload.(type) {
	case api.Stopped:
		e.Status, e.ExitCode = api.StatusStopped, p.ExitCode
	case api.Crashed:
		e.Status, e.ExitCode, e.Error = api.StatusCrashed, p.ExitCode, p.Error
	}
	f.mu.Lock()
	f.end = e
	f.mu.Unlock()
	f.poke()
}

// handleFollow answers corral.proc.<id>.follow.
func (s *Service) handleFollow(sup Supervisor, id string, m *nats.Msg) {
	r := msgRequest{m}
	what := fmt.Sprintf("cannot follow %q", id)
	var req api.FollowRequest
	if err := decodeRequest(what, m.Data, &req); err != nil {
		respondError(r, err)
		return
	}
	if err := checkFollow(req); err != nil {
		respondError(r, fmt.Errorf("%s: %w", what, err))
		return
	}
	mp, ok := sup.Get(id)
	if !ok {
		respondError(r, api.Errorf(api.ErrNotFound, "%s: no such process", what))
		return
	}
	reply := api.FollowReply{ProcessID: id, Node: s.cfg.NodeID, RenewMs: s.cfg.Follow.Renew.Milliseconds()}
	if req.Release {
		s.mu.Lock()
		f := s.follows[id]
		s.mu.Unlock()
		if f != nil {
			s.release(f, req.Follower)
		}
		_ = r.RespondJSON(reply)
		return
	}
	f, renewed, err := s.lease(id, mp.Name, req.Follower, userOf(m.Reply), time.Now())
	if err != nil {
		respondError(r, err)
		return
	}
	if renewed {
		reply.Renewed = true
		_ = r.RespondJSON(reply)
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.RequestTimeout)
	defer cancel()
	snap, err := sup.FollowLogs(ctx, id, f, node.TailOptions{Lines: req.Tail, Since: time.Duration(req.SinceMs) * time.Millisecond})
	if err != nil {
		s.release(f, req.Follower)
		respondError(r, err)
		return
	}
	f.mu.Lock()
	if f.end == nil && f.next <= snap.Offset { // nothing came after it yet
		f.epoch, f.next = snap.Epoch, snap.Offset
	}
	f.mu.Unlock()
	reply.Log, reply.Offset, reply.Epoch, reply.Truncated = snap.Tail, snap.Offset, snap.Epoch, snap.Truncated
	// Ended before the tail was taken (its end was reported before the
	// lease, or will be published too): the tail is all there is.
	if mp, ok := sup.Get(id); ok && mp.Status.Finished() {
		reply.End = &api.LogEnd{ProcessID: id, Status: mp.Status, ExitCode: mp.ExitCode, Error: mp.Error}
		s.release(f, req.Follower)
	}
	b, err := fitLog(reply.Log, int(s.nc.MaxPayload()), func(log string, cut bool) []byte {
		fitted := reply
		fitted.Log, fitted.Truncated = log, reply.Truncated || cut
		b, _ := json.Marshal(fitted)
		return b
	})
	if err != nil {
		s.release(f, req.Follower)
		respondError(r, fmt.Errorf("%s: %w", what, err))
		return
	}
	_ = m.Respond(b)
}

// userOf names the user who asked, by the reply subject of its request,
// for FollowLimits.MaxPerRequester: under a user's inbox prefix
// (bus.InboxPrefix, _INBOX_<user>.…, which the embedded server's users
// must use) the prefix, all of the user's connections together; "" for
// any other reply subject. Those are not bounded per requester: a node's
// (nodes reply under _INBOX., and their gateways follow for every browser
// over it), or a client of a server without users, where anyone may do
// anything anyway.
//
// NATS tells a responder nothing else of who asked, and does not bind a
// reply subject to its publisher: a client that makes up reply subjects
// it cannot read (it needs no answer to hold a lease) escapes the bound.
// It keeps one careless or greedy user from taking a process's every
// lease; MaxFollowers still bounds what they all cost.
func userOf(reply string) string {
	first, _, _ := strings.Cut(reply, ".")
	if strings.HasPrefix(first, bus.InboxPrefix("")) && len(first) > len(bus.InboxPrefix("")) {
		return first
	}
	return ""
}

// checkFollow refuses a follow request a node cannot take.
func checkFollow(req api.FollowRequest) error {
	switch {
	case !api.ValidToken(req.Follower):
		return api.Errorf(api.ErrInvalid, "follower %q is not 1 to 64 letters, digits, _ or -", req.Follower)
	case req.Tail < 0 || req.Tail > node.MaxTailLines:
		return api.Errorf(api.ErrInvalid, "tail %d is out of range (0 to %d lines)", req.Tail, node.MaxTailLines)
	case req.SinceMs < 0 || req.SinceMs > maxSinceMs:
		return api.Errorf(api.ErrInvalid, "sinceMs %d is out of range (0 to %d, ten years)", req.SinceMs, int64(maxSinceMs))
	}
	return nil
}

// Followers returns how many followers hold a lease on process id's
// output (expired leases count until the next sweep).
func (s *Service) Followers(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f := s.follows[id]; f != nil {
		return len(f.leases)
	}
	return 0
}
