package control

import (
	"context"
	"errors"
	"regexp"
	"sync"

	"github.com/nats-io/nats.go"
)

// A request the NATS server's permissions refuse never reaches a node:
// the server tells the client so asynchronously (nats.go's error
// handler), and the request would otherwise wait out its timeout. A
// permitWatch, one per connection, hears those refusals and ends the
// requests waiting on the refused subject at once, with an error of kind
// ErrNotPermitted.

// errRefused is the cause of a context ended by a refusal.
var errRefused = errors.New("refused by the server's permissions")

// permitWatch follows a connection's permission violations.
type permitWatch struct {
	mu      sync.Mutex
	waiting map[string]map[*permitWaiter]struct{} // by subject
}

type permitWaiter struct{ cancel context.CancelCauseFunc }

var (
	watchesMu sync.Mutex
	watches   = map[*nats.Conn]*permitWatch{}
)

// watchFor returns the connection's watch, installing it (ahead of the
// connection's own error handler, which is still called) on first use.
func watchFor(nc *nats.Conn) *permitWatch {
	watchesMu.Lock()
	defer watchesMu.Unlock()
	if w := watches[nc]; w != nil {
		return w
	}
	w := &permitWatch{waiting: map[string]map[*permitWaiter]struct{}{}}
	prev := nc.ErrorHandler()
	nc.SetErrorHandler(func(c *nats.Conn, sub *nats.Subscription, err error) {
		w.refused(err)
		if prev != nil {
			prev(c, sub, err)
		}
	})
	prevClosed := nc.ClosedHandler()
	nc.SetClosedHandler(func(c *nats.Conn) {
		watchesMu.Lock()
		delete(watches, c)
		watchesMu.Unlock()
		if prevClosed != nil {
			prevClosed(c)
		}
	})
	watches[nc] = w
	return w
}

// publishDenied finds the subject of a publish the server refused.
var publishDenied = regexp.MustCompile(`Publish to "(\S+)"`)

// refused ends the requests waiting on the subject err names.
func (w *permitWatch) refused(err error) {
	if !errors.Is(err, nats.ErrPermissionViolation) {
		return
	}
	m := publishDenied.FindStringSubmatch(err.Error()) // the subject is only in the text
	if m == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for pw := range w.waiting[m[1]] {
		pw.cancel(errRefused)
	}
}

// guard returns a context that ends, with cause errRefused, as soon as
// the server refuses a publish to subject; call stop when the request is
// over.
func (w *permitWatch) guard(ctx context.Context, subject string) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	pw := &permitWaiter{cancel: cancel}
	w.mu.Lock()
	if w.waiting[subject] == nil {
		w.waiting[subject] = map[*permitWaiter]struct{}{}
	}
	w.waiting[subject][pw] = struct{}{}
	w.mu.Unlock()
	return ctx, func() {
		w.mu.Lock()
		delete(w.waiting[subject], pw)
		if len(w.waiting[subject]) == 0 {
			delete(w.waiting, subject)
		}
		w.mu.Unlock()
		cancel(nil)
	}
}

// refusal is the error of a request the server refused. It matches
// ErrNotPermitted; explain turns it into a sentence that says what was
// asked.
type refusal struct{ subject string }

func (r *refusal) Error() string {
	return "not permitted: this user may not publish to " + r.subject
}

// Is matches ErrNotPermitted.
func (r *refusal) Is(target error) bool { return target == ErrNotPermitted }

// refusedIn reports whether ctx ended because the server refused.
func refusedIn(ctx context.Context) bool { return errors.Is(context.Cause(ctx), errRefused) }
