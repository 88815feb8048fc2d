package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Errors returned by Control. Test with errors.Is. The first are the kinds
// of package api, named as a client sees them: a node's error reply (a
// *ServiceError) matches the kind of its code. The last two are what only
// a client can tell: nobody answered in time, or the node that owns what
// was asked for is gone.
var (
	ErrBadRequest   = api.ErrInvalid      // 400
	ErrNotPermitted = api.ErrNotPermitted // 403
	ErrNotFound     = api.ErrNotFound     // 404
	ErrConflict     = api.ErrConflict     // 409
	ErrInternal     = api.ErrInternal     // 500
	ErrNoCapacity   = api.ErrNoCapacity   // 503
	ErrTimeout      = errors.New("timed out")
	ErrUnreachable  = errors.New("unreachable")
)

// ServiceError is an error reply of the control service. Its Description
// is the node's own sentence, which says what could not be done (`cannot
// spawn "enc": definition not found`): Control returns it as it is.
type ServiceError struct {
	Code        int
	Description string
}

func (e *ServiceError) Error() string { return e.Description }

// Is matches the kind of the error's code (api.KindOf), and ErrTimeout
// for 504.
func (e *ServiceError) Is(target error) bool {
	if e.Code == 504 {
		return target == ErrTimeout
	}
	return target == api.KindOf(e.Code)
}

// Control drives the cluster's nodes over NATS. It is what corralctl uses
// and what Go services embed. Safe for concurrent use.
type Control struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	timeout time.Duration
	// gatherWait is how long a scatter-gather without a node registry
	// waits for more answers after the last one.
	gatherWait time.Duration
	permits    *permitWatch // the connection's permission refusals
	// localView, when set, is the view of the node this Control runs in
	// (WithLocalRegistry).
	localView func(api.RegistryRequest) (api.RegistryView, bool)

	mu sync.Mutex
	kv jetstream.KeyValue // the node registry, once found
}

// Option configures a Control.
type Option func(*Control)

// WithTimeout sets the timeout of requests whose context has no deadline
// (default 5 s).
func WithTimeout(d time.Duration) Option { return func(c *Control) { c.timeout = d } }

// WithLocalRegistry has the Control take the nodes and their processes
// from view, the watcher of the node it runs in, rather than from whichever
// node answers corral.registry: a node's reconciler then counts gone only
// the nodes its own node does not hear, never those that a node just back
// from a partition has not heard from again yet (its routes come back one
// at a time). While view reports false (the node has not heard every node
// yet), the Control asks corral.registry.
func WithLocalRegistry(view func(api.RegistryRequest) (api.RegistryView, bool)) Option {
	return func(c *Control) { c.localView = view }
}

// New returns a Control on nc. It adds itself to nc's error handler (set
// nc's own handlers before, with nats.ErrorHandler, not after) to learn at
// once of a request that the server's permissions refuse.
func New(nc *nats.Conn, opts ...Option) *Control {
	js, _ := jetstream.New(nc) // without options, New cannot fail
	c := &Control{nc: nc, js: js, timeout: 5 * time.Second, gatherWait: 150 * time.Millisecond, permits: watchFor(nc)}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Get returns one process, from the node that owns it.
func (c *Control) Get(ctx context.Context, id string) (api.ManagedProcess, error) {
	var mp api.ManagedProcess
	return mp, c.procRequest(ctx, id, bus.VerbGet, nil, &mp, "get")
}

// Stop stops a process (signal "" means the definition's stop signal) and
// returns it once it has exited.
func (c *Control) Stop(ctx context.Context, id, signal string) (api.ManagedProcess, error) {
	var mp api.ManagedProcess
	return mp, c.procRequest(ctx, id, bus.VerbStop, api.StopRequest{Signal: signal}, &mp, "stop")
}

// Restart restarts a process and returns the new one.
func (c *Control) Restart(ctx context.Context, id string) (api.ManagedProcess, error) {
	var mp api.ManagedProcess
	return mp, c.procRequest(ctx, id, bus.VerbRestart, nil, &mp, "restart")
}

// Send writes one JSON value to a process's connection.
func (c *Control) Send(ctx context.Context, id string, msg json.RawMessage) error {
	if !json.Valid(msg) {
		return api.Errorf(ErrBadRequest, "cannot send to %q: the message is not valid JSON", id)
	}
	var ok api.OK
	return c.procRequest(ctx, id, bus.VerbSend, msg, &ok, "send to")
}

// Logs returns the last lines of a process's output (and whether the
// reply left older ones out: LogsReply.Truncated).
func (c *Control) Logs(ctx context.Context, id string, lines int) (api.LogsReply, error) {
	return c.LogsSince(ctx, id, lines, 0)
}

// LogsSince returns the lines of a process's output written within since
// (as far as its node can tell: README "Subjects"), the last lines of
// them when lines is more than 0; since 0 is Logs.
func (c *Control) LogsSince(ctx context.Context, id string, lines int, since time.Duration) (api.LogsReply, error) {
	req := api.LogsRequest{Lines: lines, SinceMs: since.Milliseconds()}
	if since > 0 && req.SinceMs == 0 {
		req.SinceMs = 1
	}
	var r api.LogsReply
	err := c.procRequest(ctx, id, bus.VerbLogs, req, &r, "read logs of")
	return r, err
}

func (c *Control) procRequest(ctx context.Context, id, verb string, req, reply any, what string) error {
	err := c.request(ctx, bus.ProcSubject(id, verb), req, reply)
	if errors.Is(err, nats.ErrNoResponders) {
		if owner, gone := c.ownerGone(ctx, id); gone {
			return api.Errorf(ErrUnreachable, "cannot %s %q: node %q is unreachable", what, id, owner)
		}
		return api.Errorf(ErrNotFound, "cannot %s %q: no such process", what, id)
	}
	if err != nil {
		return explain(err, "cannot %s %q", what, id)
	}
	return nil
}

// explain says what could not be done, unless err is a node's error reply:
// the control service answers with whole sentences that say it already.
// A request the server's permissions refused reads "not permitted: …".
func explain(err error, format string, args ...any) error {
	if _, ok := errors.AsType[*ServiceError](err); ok {
		return err
	}
	if r, ok := errors.AsType[*refusal](err); ok {
		return api.Errorf(ErrNotPermitted, "not permitted: "+format+" (this user may not publish to %s)", append(args, r.subject)...)
	}
	return fmt.Errorf(format+": %w", append(args, err)...)
}

// StopAll stops every running process (of one name when name is not empty)
// on every node that answers, all at once, and returns the processes it
// stopped. Processes the registry last saw on a node that is gone cannot
// be stopped: the error, which wraps ErrUnreachable, counts them.
func (c *Control) StopAll(ctx context.Context, name, signal string) ([]api.ManagedProcess, error) {
	nodes, err := c.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		out  []api.ManagedProcess
		errs []error
		gone []string
	)
	for _, n := range nodes {
		if n.Gone {
			gone = append(gone, n.ID)
			continue
		}
		wg.Go(func() {
			var lr api.ListReply
			err := c.request(ctx, bus.NodeSubject(n.ID, bus.VerbStopAll), api.StopAllRequest{Signal: signal, Name: name}, &lr)
			if errors.Is(err, nats.ErrNoResponders) {
				err = api.Errorf(ErrUnreachable, "node %q is unreachable", n.ID)
			}
			for _, p := range lr.Rest { // more than its reply holds in full
				lr.Processes = append(lr.Processes, summaryProcess(p))
			}
			if err == nil && lr.More > 0 {
				err = fmt.Errorf("%d more processes were stopped than its reply could sum up", lr.More)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("cannot stop processes on node %q: %w", n.ID, err))
			}
			out = append(out, lr.Processes...)
		})
	}
	wg.Wait()
	if len(gone) > 0 {
		procs := c.procsOf(ctx, c.readRegistry(ctx, api.ProcessesGone), gone)
		for _, id := range gone {
			left := 0
			for _, p := range procs[id] {
				if name == "" || p.Name == name {
					left++
				}
			}
			if left > 0 {
				what := "processes"
				if left == 1 {
					what = "process"
				}
				errs = append(errs, api.Errorf(ErrUnreachable, "cannot stop %d %s on node %q: node %q is unreachable", left, what, id, id))
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Node != out[j].Node {
			return out[i].Node < out[j].Node
		}
		return out[i].StartedAt.Before(out[j].StartedAt)
	})
	sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
	return out, errors.Join(errs...)
}

// Definitions returns the definitions of every node that answers, sorted
// by node.
func (c *Control) Definitions(ctx context.Context) ([]api.DefinitionsReply, error) {
	nodes, err := c.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]api.DefinitionsReply, 0, len(nodes))
	for _, n := range nodes {
		if n.Gone {
			continue
		}
		var dr api.DefinitionsReply
		if err := c.request(ctx, bus.NodeSubject(n.ID, bus.VerbDefinitions), nil, &dr); err != nil {
			return nil, fmt.Errorf("cannot list definitions of node %q: %w", n.ID, err)
		}
		out = append(out, dr)
	}
	return out, nil
}

// Define adds or replaces a definition on one node.
func (c *Control) Define(ctx context.Context, nodeID string, def api.DefinitionInfo) (api.DefinitionInfo, error) {
	var out api.DefinitionInfo
	err := c.request(ctx, bus.NodeSubject(nodeID, bus.VerbDefine), def, &out)
	if errors.Is(err, nats.ErrNoResponders) {
		return out, api.Errorf(ErrUnreachable, "cannot define %q: node %q is unreachable", def.Name, nodeID)
	}
	if err != nil {
		return out, explain(err, "cannot define %q", def.Name)
	}
	return out, nil
}

// request sends one request and decodes the reply or its error headers.
func (c *Control) request(ctx context.Context, subject string, req, reply any) error {
	data, err := encodeRequest(req)
	if err != nil {
		return err
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	ctx, stop := c.permits.guard(ctx, subject)
	defer stop()
	m, err := c.nc.RequestWithContext(ctx, subject, data)
	if err != nil {
		if refusedIn(ctx) {
			return &refusal{subject: subject}
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return api.Errorf(ErrTimeout, "no answer on %s in time", subject)
		}
		return err
	}
	return decodeReply(m, reply)
}

func (c *Control) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, c.timeout)
}

func encodeRequest(req any) ([]byte, error) {
	switch r := req.(type) {
	case nil:
		return nil, nil
	case json.RawMessage:
		return r, nil
	}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, api.Errorf(ErrBadRequest, "cannot encode the request: %v", err)
	}
	return b, nil
}

func decodeReply(m *nats.Msg, reply any) error {
	if desc := m.Header.Get(bus.HeaderServiceError); desc != "" {
		code, _ := strconv.Atoi(m.Header.Get(bus.HeaderServiceErrorCode))
		return &ServiceError{Code: code, Description: desc}
	}
	if reply == nil {
		return nil
	}
	if err := json.Unmarshal(m.Data, reply); err != nil {
		return api.Errorf(ErrInternal, "cannot decode the reply: %v", err)
	}
	return nil
}
