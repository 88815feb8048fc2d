package node

import (
	"errors"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// reaper waits for the exits of the node's own children: one goroutine for
// all of them, woken by SIGCHLD, that calls wait4 with WNOHANG on each pid
// it was given, never on -1 (which would steal the exit of a child that
// other code in the process waits for). A child started with ForkExec
// costs the node no file descriptor and no thread while it runs: os/exec
// would keep a pidfd per child (Go 1.23 and later) and a goroutine blocked
// in wait. Re-adopted processes are not the node's children: they are
// watched through a pidfd (adopt.go).
//
// A SIGCHLD costs one wait4 per running child; SIGCHLDs that arrive during
// a pass are folded into the next one, so a burst of exits costs a few
// passes, not one per exit. A child just registered is looked at on its own
// (it may have exited before it was registered), so a spawn costs one
// wait4, not one per running child.
type reaper struct {
	mu      sync.Mutex
	waiting map[int]chan<- exitStatus // guarded by mu
	fresh   []int                     // registered since the last look; guarded by mu

	sigs chan os.Signal
	wake chan struct{} // a pid was added: it may have exited already
	stop chan struct{}
	done chan struct{}
	pids []int // the loop's scratch
}

// exitStatus is how a child ended. known is false when another waiter
// reaped it first (wait4 said ECHILD): the status is then lost.
type exitStatus struct {
	ws    syscall.WaitStatus
	known bool
}

// newReaper starts the reaping goroutine; close stops it.
func newReaper() *reaper {
	r := &reaper{
		waiting: make(map[int]chan<- exitStatus),
		sigs:    make(chan os.Signal, 1),
		wake:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	signal.Notify(r.sigs, syscall.SIGCHLD)
	go r.run()
	return r
}

// watch registers a child just started; its exit arrives on the channel
// returned (buffered: the reaper never blocks on it).
func (r *reaper) watch(pid int) <-chan exitStatus {
	ch := make(chan exitStatus, 1)
	r.mu.Lock()
	r.waiting[pid] = ch
	r.fresh = append(r.fresh, pid)
	r.mu.Unlock()
	select { // its SIGCHLD may have come before it was registered
	case r.wake <- struct{}{}:
	default:
	}
	return ch
}

// forget unregisters pid and reports whether it was still waited for (the
// caller must then reap it itself).
func (r *reaper) forget(pid int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.waiting[pid]
	delete(r.waiting, pid)
	return ok
}

// stopped is closed once the reaper has stopped: nothing waited for
// arrives any more.
func (r *reaper) stopped() <-chan struct{} { return r.done }

// close stops the reaper and waits for its goroutine. Children still
// running are left to whoever reaps them next (after a Detach, the init
// process once the node exits).
func (r *reaper) close() {
	select {
	case <-r.stop:
	default:
		close(r.stop)
	}
	<-r.done
}

func (r *reaper) run() {
	defer close(r.done)
	defer signal.Stop(r.sigs)
	for {
		select {
		case <-r.stop:
			return
		case <-r.sigs:
			r.pass(true)
		case <-r.wake:
			r.pass(false)
		}
	}
}

// pass reaps the registered children that have exited: all of them, or
// only those registered since the last pass.
func (r *reaper) pass(all bool) {
	r.mu.Lock()
	r.pids = r.pids[:0]
	if all {
		for pid := range r.waiting {
			r.pids = append(r.pids, pid)
		}
	} else {
		r.pids = append(r.pids, r.fresh...)
	}
	r.fresh = r.fresh[:0]
	r.mu.Unlock()
	for _, pid := range r.pids {
		var ex exitStatus
		got, err := wait4(pid, &ex.ws, syscall.WNOHANG)
		switch {
		case err == nil && got == pid:
			ex.known = true
		case errors.Is(err, syscall.ECHILD): // reaped by someone else, or not ours
		default:
			continue // still running
		}
		r.mu.Lock()
		ch, ok := r.waiting[pid]
		delete(r.waiting, pid)
		r.mu.Unlock()
		if ok {
			ch <- ex
		}
	}
}

// wait4 is syscall.Wait4 retried on EINTR.
func wait4(pid int, ws *syscall.WaitStatus, options int) (int, error) {
	for {
		got, err := syscall.Wait4(pid, ws, options, nil)
		if err != syscall.EINTR {
			return got, err
		}
	}
}
