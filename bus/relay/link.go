package relay

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go"
)

// link tells the relay's waits when the NATS connection is up. Its view is
// refreshed from the connection's status by whoever asks and by the relay's
// watcher on every status change nats.go reports, so a wait never trusts a
// stale state.
type link struct {
	nc *nats.Conn

	// epochs counts the times the connection came up: what was sent in
	// an earlier epoch may have been lost with that connection.
	epochs atomic.Uint64

	mu     sync.Mutex
	isUp   bool
	up     chan struct{} // closed while connected
	isDead bool
	dead   chan struct{} // closed once the connection is closed for good
}

func newLink(nc *nats.Conn) *link {
	l := &link{nc: nc, up: make(chan struct{}), dead: make(chan struct{})}
	l.refresh()
	return l
}

// refresh reads the connection's status and reports whether the
// connection came up since the last refresh.
func (l *link) refresh() (cameUp bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.nc.IsClosed():
		if !l.isDead {
			l.isDead = true
			close(l.dead)
		}
	case l.nc.IsConnected():
		if !l.isUp {
			l.isUp = true
			l.epochs.Add(1)
			close(l.up)
			return true
		}
	case l.isUp:
		l.isUp = false
		l.up = make(chan struct{})
	}
	return false
}

// epoch is the number of times the connection came up, as last refreshed.
func (l *link) epoch() uint64 { return l.epochs.Load() }

// connected reports whether the connection is up now.
func (l *link) connected() bool {
	l.refresh()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.isUp
}

// isClosed reports whether the connection is closed for good.
func (l *link) isClosed() bool {
	l.refresh()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.isDead
}

// wait blocks until the connection is up and reports true, or reports
// false once the connection is closed for good or ctx ends.
func (l *link) wait(ctx context.Context) bool {
	l.refresh()
	l.mu.Lock()
	up, dead := l.up, l.dead
	l.mu.Unlock()
	select {
	case <-up:
		return true
	case <-dead:
		return false
	case <-ctx.Done():
		return false
	}
}
