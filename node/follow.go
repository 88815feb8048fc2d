package node

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/corral-run/corral/api"
)

// Following a process's output: the hook where the node has just written
// what it read from a child's FIFO to the log (logPipe.put).
//
// Each pipe has a tap, an atomic pointer that is nil while nobody follows:
// then put's whole cost of following is that one atomic load, and no
// allocation. FollowLogs sets it to a LogSink (in corrald, the control
// service's publisher of corral.logs.<id>), which from then on gets
// every byte written to the log, on the pipe's goroutine, with its
// offset. UnfollowLogs takes it away.
//
// Nothing is lost or doubled between the tail a follower is given and
// the output it then gets: the tail is read by the pipe's own goroutine
// (the only writer of the log) between two writes, and the tap is set at
// that same point. The goroutine waits in the runtime's poller for the
// child's next write, so FollowLogs wakes it with a read deadline in the
// past (as stop does), and it answers every waiting request (logPipe.ask)
// before it reads again. Offsets count the bytes this pipe has read since
// it began (LogSnapshot.Epoch), so a follower can tell what it missed.

// LogSink receives the output of a process someone follows (FollowLogs).
type LogSink interface {
	// LogOutput is called on the process's log goroutine with what the
	// node has just written to the log, offset being where data begins
	// in the output read since epoch (LogSnapshot): whole lines, but for
	// a line longer than 64 KiB (in pieces) and the unfinished last line
	// of an output that ends. data is only valid during the call.
	// LogOutput must not block: the child's output waits while it runs.
	LogOutput(data []byte, epoch, offset int64)
}

// logTap is what a pipe hands its output to.
type logTap struct{ sink LogSink }

// tailAsk is a request for a tail, waiting for the pipe's goroutine.
type tailAsk struct {
	opts TailOptions
	sink LogSink // set the tap to it, where the tail ends; nil: just read
	done chan tailAnswer
	// state: askWaiting until the pipe's goroutine takes it (askTaken) or
	// its caller gives up (askAbandoned): an abandoned ask is neither read
	// nor given the tap.
	state atomic.Int32
}

const (
	askWaiting int32 = iota
	askTaken
	askAbandoned
)

// maxAsks bounds the tails and follows waiting for one pipe's goroutine:
// each costs it file reads while the child's output waits.
const maxAsks = 16

type tailAnswer struct {
	snap LogSnapshot
	err  error
}

// FollowLogs hands sink everything process id writes from now on, and
// returns its tail as opts ask (no lines when both are zero): sink gets
// the output from exactly where the tail ends (LogSnapshot.Offset). A
// process has one sink: another one replaces it. Sinks are compared with
// == (UnfollowLogs): use a pointer.
//
// When no node reads its output any more (it has ended, or was lost),
// FollowLogs returns its tail and sink gets nothing.
func (s *Supervisor) FollowLogs(ctx context.Context, id string, sink LogSink, opts TailOptions) (LogSnapshot, error) {
	if sink == nil {
		return LogSnapshot{}, errors.New("cannot follow: no sink")
	}
	return s.snapshot(ctx, id, sink, opts, "cannot follow %q")
}

// UnfollowLogs stops handing process id's output to sink (if sink is the
// one it is handed to). sink may still be running its last call when
// UnfollowLogs returns.
func (s *Supervisor) UnfollowLogs(id string, sink LogSink) {
	p := s.lookup(id)
	if p == nil || p.logs == nil {
		return
	}
	if t := p.logs.tap.Load(); t != nil && t.sink == sink {
		p.logs.tap.CompareAndSwap(t, nil)
	}
}

// ask has the pipe's goroutine read the tail as opts ask, and set its tap
// to sink if not nil. ok is false when the goroutine has ended (then the
// files hold everything, and the caller reads them).
func (lp *logPipe) ask(ctx context.Context, opts TailOptions, sink LogSink) (snap LogSnapshot, ok bool, err error) {
	a := &tailAsk{opts: opts, sink: sink, done: make(chan tailAnswer, 1)}
	lp.askMu.Lock()
	if lp.ended {
		lp.askMu.Unlock()
		return LogSnapshot{}, false, nil
	}
	if len(lp.asks) >= maxAsks {
		lp.askMu.Unlock()
		return LogSnapshot{}, false, api.Errorf(api.ErrNoCapacity, "%d reads of this process's logs are waiting already; try again", maxAsks)
	}
	lp.asks = append(lp.asks, a)
	lp.askMu.Unlock()
	lp.asked.Store(true)
	_ = lp.r.SetReadDeadline(time.Unix(1, 0)) // wake it: see setDeadline
	select {
	case ans := <-a.done:
		return ans.snap, true, ans.err
	case <-ctx.Done():
		if a.state.CompareAndSwap(askWaiting, askAbandoned) {
			return LogSnapshot{}, false, ctx.Err()
		}
		ans := <-a.done // taken already: its answer (and tap) is on the way
		return ans.snap, true, ans.err
	}
}

// answer reads the tails asked for, on the pipe's goroutine, and sets the
// tap where they end. live is false once the goroutine is ending: the
// tap is not set (nothing more will be read).
func (lp *logPipe) answer(live bool) {
	lp.askMu.Lock()
	asks := lp.asks
	lp.asks = nil
	if !live {
		lp.ended = true
	}
	lp.askMu.Unlock()
	for _, a := range asks {
		if !a.state.CompareAndSwap(askWaiting, askTaken) {
			continue // its caller has gone
		}
		if live && a.sink != nil {
			if t := lp.tap.Load(); t == nil || t.sink != a.sink {
				lp.tap.Store(&logTap{sink: a.sink})
			}
		}
		snap, err := lp.p.readTail(lp, a.opts, time.Now())
		a.done <- tailAnswer{snap: snap, err: err}
	}
}
