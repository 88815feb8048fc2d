package control

import (
	"context"
	"encoding/json"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/corral-run/corral/bus"
	"github.com/corral-run/corral/bus/registry"
)

// A cluster-wide request (Nodes, List) asks every node at once and gathers
// the answers: gather is the one loop that does it.
//
// It knows which nodes to wait for from the node registry (read alongside,
// see readRegistry) and, where the request asks for it, from a ping of the
// control service sent with it. Without a registry there is no list of
// nodes to wait for: it waits until no answer has come for gatherWait.

// gatherRequest is one cluster-wide request.
type gatherRequest struct {
	// subject and data are the request every node answers.
	subject string
	data    []byte
	// processes is what the registry read brings (RegistryRequest.Processes).
	processes string
	// ping also asks $SRV.PING.corral, so that a node that answers the
	// ping but not (yet) the request is waited for.
	ping bool
	// waitForKnown keeps waiting, once answers stop coming, for the nodes
	// the registry knows as alive (until they answer or miss their
	// heartbeats). Without it a pause of gatherWait ends the gathering
	// whatever the registry says.
	waitForKnown bool
	// answer reads one answer and returns the node that gave it ("" to
	// ignore it). An error ends the gathering with that error.
	answer func(m *nats.Msg) (node string, err error)
}

// gathered is what a gathering found.
type gathered struct {
	reg      registryView    // the registry as read at the start
	answered map[string]bool // the nodes that answered the request
	pinged   map[string]bool // the nodes that answered the ping
	// waiting are the known nodes that had not answered when it ended:
	// pinged, or alive in the registry.
	waiting  []string
	timedOut bool // ctx ended first
}

// servicePing is a node's answer to bus.SubjectPing (micro.Ping, read without
// linking nats.go/micro into every client).
type servicePing struct {
	Name     string            `json:"name"`
	ID       string            `json:"id"`
	Version  string            `json:"version"`
	Metadata map[string]string `json:"metadata"`
	Type     string            `json:"type"`
}

// gather sends req to every node and collects the answers until every
// known node answered (see gatherRequest), nobody serves the subject, or
// ctx ends.
func (c *Control) gather(ctx context.Context, req gatherRequest) (gathered, error) {
	g := gathered{answered: map[string]bool{}, pinged: map[string]bool{}}
	ctx, stopGuard := c.permits.guard(ctx, req.subject)
	defer stopGuard()
	regCh := c.startRegistryRead(ctx, req.processes)
	replies, _, stopReplies, err := c.scatter(req.subject, req.data)
	if err != nil {
		return g, err
	}
	defer stopReplies()
	var pings <-chan *nats.Msg
	if req.ping {
		ch, _, stopPing, err := c.scatter(bus.SubjectPing, nil)
		if err != nil {
			return g, err
		}
		defer stopPing()
		pings = ch
	}

	var (
		regDone bool
		nobody  bool // nobody serves the subject
		quiet   bool // no answer for gatherWait
		idle    <-chan time.Time
		staleAt time.Time // when the first node waited for only by the registry is gone
	)
	waiting := func() []string {
		var out []string
		for id := range g.pinged {
			if !g.answered[id] {
				out = append(out, id)
			}
		}
		now := time.Now()
		staleAt = time.Time{}
		for id, r := range g.reg.records {
			if !g.answered[id] && !g.pinged[id] && g.reg.fresh(id, now) {
				out = append(out, id)
				if at := r.At.Add(registry.GoneAfter(r.Info.IntervalMs)); staleAt.IsZero() || at.Before(staleAt) {
					staleAt = at
				}
			}
		}
		return out
	}
	done := func() bool {
		switch {
		case !regDone:
			return false
		case nobody, quiet && !req.waitForKnown:
			return true
		}
		return len(waiting()) == 0 && (g.reg.known() || quiet)
	}
	var stale *time.Timer
	defer func() {
		if stale != nil {
			stale.Stop()
		}
	}()
	for !done() && !g.timedOut {
		var staleC <-chan time.Time
		if !staleAt.IsZero() { // wake up when a node waited for is gone
			if stale == nil {
				stale = time.NewTimer(time.Until(staleAt))
			} else {
				stale.Reset(time.Until(staleAt))
			}
			staleC = stale.C
		}
		select {
		case <-staleC:
		case v := <-regCh:
			g.reg, regDone, regCh = v, true, nil
		case m := <-replies:
			if noResponders(m) {
				nobody, replies = true, nil
				continue
			}
			id, err := req.answer(m)
			if err != nil {
				return g, err
			}
			if id != "" {
				g.answered[id] = true
			}
			quiet, idle = false, time.After(c.gatherWait)
		case m := <-pings:
			if noResponders(m) {
				pings = nil
				continue
			}
			if id, _ := pingNode(m); id != "" {
				g.pinged[id] = true
			}
			quiet, idle = false, time.After(c.gatherWait)
		case <-idle:
			quiet = true
		case <-ctx.Done():
			if refusedIn(ctx) {
				return g, &refusal{subject: req.subject}
			}
			g.timedOut = true
		}
	}
	g.waiting = waiting()
	return g, nil
}

// scatter publishes a request that many nodes answer, and returns the
// channel their answers arrive on, a function that publishes the request
// again to the same inbox (its answers come on the same channel), and one
// to call to stop listening.
func (c *Control) scatter(subject string, data []byte) (replies <-chan *nats.Msg, again func() error, stop func(), err error) {
	inbox := c.nc.NewRespInbox()
	ch := make(chan *nats.Msg, 256)
	sub, err := c.nc.ChanSubscribe(inbox, ch)
	if err != nil {
		return nil, nil, nil, err
	}
	again = func() error { return c.nc.PublishRequest(subject, inbox, data) }
	if err := again(); err != nil {
		_ = sub.Unsubscribe()
		return nil, nil, nil, err
	}
	return ch, again, func() { _ = sub.Unsubscribe() }, nil
}

// noResponders reports whether m is the server's "no responders" status.
func noResponders(m *nats.Msg) bool { return m.Header.Get("Status") == "503" && len(m.Data) == 0 }

// pingNode returns the node id a $SRV.PING answer names, or "".
func pingNode(m *nats.Msg) (string, servicePing) {
	var ping servicePing
	if err := json.Unmarshal(m.Data, &ping); err != nil || ping.Name != bus.ServiceName {
		return "", ping
	}
	return ping.Metadata["node"], ping
}
