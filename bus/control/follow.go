package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus"
)

// FollowOptions say what Follow shows before the output that follows.
type FollowOptions struct {
	// Tail is how many of the last lines to show first (0 to 10000).
	Tail int
	// Since shows the lines written within Since first (as far as the
	// node can tell: see README "Subjects"), at most Tail of them when
	// Tail is set, else up to 10000.
	Since time.Duration
}

// Output is what Follow hands its callback: the process's output, or news
// of output it missed.
type Output struct {
	// Data is output, as the child wrote it: whole lines but for a line
	// longer than 64 KiB, which comes in pieces, and an unfinished last
	// one.
	Data []byte
	// Tail says Data is the tail asked for (FollowOptions); Truncated,
	// that more was asked for than a reply holds (256 KiB, the server's
	// max_payload) and the oldest lines were left out.
	Tail, Truncated bool
	// Missed counts the bytes of output that did not reach this follower
	// here (it, the bus or the node could not keep up); -1: an unknown
	// amount (the node began counting anew: it restarted).
	Missed int64
}

// followPending bounds the output received and not yet handed to the
// callback: beyond it NATS drops messages, and the callback is told
// what it missed.
const followPending = 16 << 20

// followGrace is how long Follow goes on without an answer to its
// renewals (the node may be restarting) before it gives up.
const followGrace = 30 * time.Second

// Follow calls fn with the output of process id as its node reads it:
// first the tail opts ask for, then everything the process writes, until
// the process ends (Follow returns how, once fn had the last of it), ctx
// ends (it returns ctx's error) or fn returns an error (returned). fn
// runs on the calling goroutine.
//
// It subscribes to corral.logs.<id>, then asks the process's node for a
// lease on its output (corral.proc.<id>.follow), and renews it as the node
// asks until it returns; the node publishes the output only while someone
// holds a lease, and releases it as it returns. Offsets in every message
// let it hand each byte over once, in order, and count what it missed
// (Output.Missed). It gives up when the node refuses a renewal (the
// process is gone), or does not answer for 30 s.
func (c *Control) Follow(ctx context.Context, id string, opts FollowOptions, fn func(Output) error) (api.LogEnd, error) {
	subject := bus.LogSubject(id)
	sub, err := c.nc.SubscribeSync(subject)
	if err != nil {
		return api.LogEnd{}, fmt.Errorf("cannot follow %q: cannot subscribe to %s: %w", id, subject, err)
	}
	defer sub.Unsubscribe()
	_ = sub.SetPendingLimits(-1, followPending)

	// The subscription reaches the server before the request, which goes
	// after it on the same connection: no output published after the
	// node's answer is missed.
	follower := nuid.Next()
	req := api.FollowRequest{Follower: follower, Tail: opts.Tail, SinceMs: opts.Since.Milliseconds()}
	if opts.Since > 0 && req.SinceMs == 0 {
		req.SinceMs = 1
	}
	var reply api.FollowReply
	if err := c.procRequest(ctx, id, bus.VerbFollow, req, &reply, "follow"); err != nil {
		return api.LogEnd{}, err
	}
	if reply.Log != "" || reply.Truncated {
		if err := fn(Output{Data: []byte(reply.Log), Tail: true, Truncated: reply.Truncated}); err != nil {
			return api.LogEnd{}, err
		}
	}
	if reply.End != nil {
		return *reply.End, nil
	}
	defer c.releaseFollow(ctx, id, follower)

	var renewing sync.WaitGroup
	defer renewing.Wait()
	loop, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	renew := time.Duration(reply.RenewMs) * time.Millisecond
	renewing.Go(func() { c.renewFollow(loop, stop, id, follower, renew) })

	at := logPosition{epoch: reply.Epoch, off: reply.Offset}
	for {
		m, err := sub.NextMsgWithContext(loop)
		switch {
		case errors.Is(err, nats.ErrSlowConsumer):
			continue // what was dropped shows in the offsets
		case loop.Err() != nil:
			if ctx.Err() != nil {
				return api.LogEnd{}, ctx.Err()
			}
			cause := context.Cause(loop)
			if e, ok := errors.AsType[*followEnd](cause); ok { // learnt by a renewal
				if err := at.missed(e.epoch, e.offset, fn); err != nil {
					return api.LogEnd{}, err
				}
				return e.end, nil
			}
			return api.LogEnd{}, cause
		case errors.Is(err, nats.ErrPermissionViolation):
			return api.LogEnd{}, api.Errorf(ErrNotPermitted, "not permitted: cannot follow %q: this user may not subscribe to %s", id, subject)
		case err != nil:
			return api.LogEnd{}, fmt.Errorf("cannot follow %q: cannot receive on %s: %w", id, subject, err)
		}
		epoch, off, ok := logHeaders(m)
		if !ok {
			continue // not a node's
		}
		if m.Header.Get(bus.HeaderLogEnd) == "true" {
			var end api.LogEnd
			if err := json.Unmarshal(m.Data, &end); err != nil {
				continue
			}
			if err := at.missed(epoch, off, fn); err != nil {
				return api.LogEnd{}, err
			}
			return end, nil
		}
		if err := at.hand(epoch, off, m.Data, fn); err != nil {
			return api.LogEnd{}, err
		}
	}
}

// logPosition is where a follower is in a process's output.
type logPosition struct{ epoch, off int64 }

// hand gives fn what of data (at off, in epoch) it has not had yet, and
// says first what it missed before.
func (at *logPosition) hand(epoch, off int64, data []byte, fn func(Output) error) error {
	end := off + int64(len(data))
	if epoch == at.epoch && end <= at.off {
		return nil // had it
	}
	if err := at.missed(epoch, off, fn); err != nil {
		return err
	}
	data = data[at.off-off:]
	at.off = end
	if len(data) == 0 {
		return nil
	}
	return fn(Output{Data: data})
}

// missed tells fn of the output between at and off (in epoch), if any,
// and moves at to off when it is further.
func (at *logPosition) missed(epoch, off int64, fn func(Output) error) error {
	switch {
	case epoch != at.epoch: // the node counts anew
		*at = logPosition{epoch: epoch, off: off}
		return fn(Output{Missed: -1})
	case off > at.off:
		n := off - at.off
		at.off = off
		return fn(Output{Missed: n})
	}
	return nil
}

// logHeaders reads a message's epoch and offset.
func logHeaders(m *nats.Msg) (epoch, off int64, ok bool) {
	epoch, err1 := strconv.ParseInt(m.Header.Get(bus.HeaderLogEpoch), 10, 64)
	off, err2 := strconv.ParseInt(m.Header.Get(bus.HeaderLogOffset), 10, 64)
	return epoch, off, err1 == nil && err2 == nil && off >= 0
}

// followEnd ends a follow: a renewal found the process ended.
type followEnd struct {
	end           api.LogEnd
	epoch, offset int64
}

func (e *followEnd) Error() string { return "the process has ended" }

// releaseFollow ends follower's lease at once, so that the node stops
// publishing soon if nobody else follows (it would after the lease
// expires anyway, so a failure does not matter).
func (c *Control) releaseFollow(ctx context.Context, id, follower string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	_ = c.request(ctx, bus.ProcSubject(id, bus.VerbFollow), api.FollowRequest{Follower: follower, Release: true}, nil)
}

// renewFollow renews follower's lease every renew until ctx ends; it ends
// the follow (stop) when the process has ended, the node refuses, or no
// node has answered for followGrace.
func (c *Control) renewFollow(ctx context.Context, stop context.CancelCauseFunc, id, follower string, renew time.Duration) {
	if renew <= 0 {
		renew = 2 * time.Second
	}
	t := time.NewTicker(renew)
	defer t.Stop()
	var failing time.Time // since when no node answers
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var r api.FollowReply
		err := c.procRequest(ctx, id, bus.VerbFollow, api.FollowRequest{Follower: follower}, &r, "follow")
		switch {
		case ctx.Err() != nil:
			return
		case err == nil:
			failing = time.Time{}
			if r.End != nil {
				stop(&followEnd{end: *r.End, epoch: r.Epoch, offset: r.Offset})
				return
			}
			if d := time.Duration(r.RenewMs) * time.Millisecond; d > 0 && d != renew {
				renew = d
				t.Reset(renew)
			}
		default:
			if _, answered := errors.AsType[*ServiceError](err); answered || errors.Is(err, ErrNotPermitted) {
				stop(err)
				return
			}
			if failing.IsZero() {
				failing = time.Now()
			} else if time.Since(failing) > followGrace {
				stop(err)
				return
			}
		}
	}
}

// Selector picks processes by definition name or service: a process
// matches when its Name is Name or its Service is Service (an empty field
// matches nothing).
type Selector struct{ Name, Service string }

func (s Selector) matches(p api.ManagedProcess) bool {
	return s.Name != "" && p.Name == s.Name || s.Service != "" && p.Service == s.Service
}

// Followed is what FollowAll hands its callback: a process's output
// (Output), or its end (End), or why following it failed (Err).
type Followed struct {
	Process api.ManagedProcess
	Output
	End *api.LogEnd
	Err error
}

// FollowAll follows, as Follow does, every running process sel picks, and
// every one that starts while it follows (it watches process.spawned),
// until ctx ends: then it returns nil. fn gets the output of each, and
// each one's end or failure; its calls are never concurrent. The running
// processes show the tail opts ask for first; those that start later,
// everything they wrote (up to 10000 lines).
//
// It fails at once when it cannot list the processes, or when the user
// may not follow them; a process that cannot be followed for another
// reason is reported to fn, and the others followed on.
//
// However long it follows, what it keeps is bounded: the processes it
// follows now, and the last 1024 that ended (so that a process.spawned
// that comes late, or twice, does not follow one again). A spawn whose
// name shows sel does not pick it costs nothing; one that sel may pick
// costs a Get (for its instance, or its service when sel names one).
func (c *Control) FollowAll(outer context.Context, sel Selector, opts FollowOptions, fn func(Followed) error) error {
	return c.followAll(outer, sel, opts, fn, newFollowSet(maxEndedFollows))
}

// maxEndedFollows is how many ended processes FollowAll remembers.
const maxEndedFollows = 1024

func (c *Control) followAll(outer context.Context, sel Selector, opts FollowOptions, fn func(Followed) error, followed *followSet) error {
	ctx, cancel := context.WithCancelCause(outer)
	defer cancel(nil)
	spawned := make(chan api.Spawned, 1024)
	sub, err := Subscribe(c.nc, bus.SubjectSpawned, func(s api.Spawned, _ Event) {
		select {
		case spawned <- s:
		default: // beyond a thousand spawns waiting: too busy to follow them all
		}
	}, OnDecodeError(func(error, Event) {}))
	if err != nil {
		return err
	}
	defer sub.Unsubscribe()
	flushCtx, cancelFlush := c.withTimeout(ctx)
	err = c.nc.FlushWithContext(flushCtx)
	cancelFlush()
	if err != nil {
		return fmt.Errorf("cannot watch %s: %w", bus.SubjectSpawned, err)
	}
	running, err := c.List(ctx, api.ListRequest{})
	if err != nil {
		return err
	}

	var (
		mu sync.Mutex // serializes fn
		wg sync.WaitGroup
	)
	defer wg.Wait()
	call := func(f Followed) error {
		mu.Lock()
		defer mu.Unlock()
		if err := context.Cause(ctx); err != nil && ctx.Err() != nil {
			return err
		}
		if err := fn(f); err != nil {
			cancel(err)
			return err
		}
		return nil
	}
	start := func(p api.ManagedProcess, opts FollowOptions) {
		if !sel.matches(p) || !followed.take(p.ID) {
			return
		}
		wg.Go(func() {
			defer followed.done(p.ID)
			end, err := c.Follow(ctx, p.ID, opts, func(o Output) error { return call(Followed{Process: p, Output: o}) })
			switch {
			case ctx.Err() != nil:
			case errors.Is(err, ErrNotPermitted):
				cancel(err)
			case err != nil:
				_ = call(Followed{Process: p, Err: err})
			default:
				_ = call(Followed{Process: p, End: &end})
			}
		})
	}
	for _, p := range running.Processes {
		if !p.Status.Finished() && p.Status != api.StatusUnknown {
			start(p, opts)
		}
	}
	fromStart := FollowOptions{Tail: maxFollowTail}
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			if outer.Err() != nil {
				return nil
			}
			return context.Cause(ctx) // fn's error, or a refusal
		case s := <-spawned:
			if followed.known(s.ProcessID) || sel.Service == "" && s.Name != sel.Name {
				continue // the event says it is not one to follow
			}
			p, err := c.Get(ctx, s.ProcessID)
			if err != nil {
				continue // gone already, or its node is
			}
			start(p, fromStart)
		}
	}
}

// followSet is what FollowAll follows: the processes it follows now, and
// the last that ended, at most remember of them (the oldest is forgotten
// first). It is safe for concurrent use.
type followSet struct {
	remember int

	mu     sync.Mutex
	active map[string]bool
	ended  map[string]bool
	order  []string // of ended, a ring: the oldest at next once full
	next   int
}

func newFollowSet(remember int) *followSet {
	return &followSet{remember: remember, active: map[string]bool{}, ended: map[string]bool{}}
}

// known reports whether process id is followed, or ended not long ago.
func (s *followSet) known(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.active[id] || s.ended[id]
}

// take notes that process id is followed, and reports whether it was
// not known.
func (s *followSet) take(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active[id] || s.ended[id] {
		return false
	}
	s.active[id] = true
	return true
}

// done notes that the follow of process id is over.
func (s *followSet) done(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.active, id)
	if s.remember <= 0 || s.ended[id] {
		return
	}
	if len(s.order) < s.remember {
		s.order = append(s.order, id)
	} else {
		delete(s.ended, s.order[s.next])
		s.order[s.next] = id
		s.next = (s.next + 1) % s.remember
	}
	s.ended[id] = true
}

// size is how many processes s knows.
func (s *followSet) size() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.active) + len(s.ended)
}

// maxFollowTail is the most lines a follow request may ask for.
const maxFollowTail = 10000

// Lines cuts output into whole lines, keeping an unfinished last line
// until the output that finishes it comes: for a follower that shows
// output line by line. The zero value is ready to use.
type Lines struct{ partial []byte }

// maxPartialLine bounds the unfinished line Lines keeps: a longer one is
// cut there.
const maxPartialLine = 64 << 10

// Add returns the lines data finishes, each ending with a newline (a line
// longer than 64 KiB is cut into lines of that size), and keeps the rest.
func (l *Lines) Add(data []byte) []byte {
	buf := append(l.partial, data...)
	end := bytes.LastIndexByte(buf, '\n') + 1
	rest := buf[end:]
	whole := buf[:end:end]
	for len(rest) > maxPartialLine {
		whole = append(append(whole, rest[:maxPartialLine]...), '\n')
		rest = rest[maxPartialLine:]
	}
	l.partial = bytes.Clone(rest) // whole may hold the array rest is in
	return whole
}

// Rest returns the unfinished line, with a newline, and forgets it; nil
// when there is none.
func (l *Lines) Rest() []byte {
	if len(l.partial) == 0 {
		return nil
	}
	rest := append(l.partial, '\n')
	l.partial = nil
	return rest
}
