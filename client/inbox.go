package client

import (
	"encoding/json"
	"sync"
)

// inbox queues lines from the node for the OnMessage handler, so a slow
// handler never holds up the reader (and with it the acks). It lives as
// long as the client, across reconnects.
type inbox struct {
	mu     sync.Mutex
	queue  []json.RawMessage
	wake   chan struct{} // capacity 1
	halt   chan struct{} // closed by stop
	haltMu sync.Once
}

func (in *inbox) init() {
	in.wake = make(chan struct{}, 1)
	in.halt = make(chan struct{})
}

func (in *inbox) push(msg json.RawMessage) {
	in.mu.Lock()
	in.queue = append(in.queue, msg)
	in.mu.Unlock()
	select {
	case in.wake <- struct{}{}:
	default:
	}
}

func (in *inbox) stop() { in.haltMu.Do(func() { close(in.halt) }) }

// dispatch calls the handler for each queued line, in order, until the
// inbox is stopped; lines still queued then are dropped. It closes done
// once the supervisor has stopped too.
func (c *Client) dispatch() {
	defer func() {
		<-c.stopped
		close(c.done)
	}()
	in := &c.inbox
	var batch []json.RawMessage
	for {
		select {
		case <-in.wake:
		case <-in.halt:
			return
		}
		in.mu.Lock()
		batch, in.queue = in.queue, batch[:0]
		in.mu.Unlock()
		for i, msg := range batch {
			select {
			case <-in.halt:
				return
			default:
			}
			if h := c.handler.Load(); h != nil {
				(*h)(msg)
			} else {
				c.log.Debug("dropped a message from the node: no OnMessage handler", "process", c.cfg.ProcessID)
			}
			batch[i] = nil
		}
	}
}
