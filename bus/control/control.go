package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
)

// Errors returned by Control. Test with errors.Is; a *ServiceError also
// matches the one of its code.
var (
	ErrBadRequest  = errors.New("bad request")
	ErrNotFound    = errors.New("not found")
	ErrConflict    = errors.New("conflict")
	ErrInternal    = errors.New("internal error")
	ErrTimeout     = errors.New("timed out")
	ErrUnreachable = errors.New("unreachable")
)

// ServiceError is an error reply of the control service.
type ServiceError struct {
	Code        int
	Description string
}

func (e *ServiceError) Error() string { return e.Description }

// Is matches the sentinel of the error's code.
func (e *ServiceError) Is(target error) bool {
	switch e.Code {
	case 400:
		return target == ErrBadRequest
	case 404:
		return target == ErrNotFound
	case 409:
		return target == ErrConflict
	case 504:
		return target == ErrTimeout
	}
	return target == ErrInternal
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

	mu sync.Mutex
	kv jetstream.KeyValue // the node registry, once found
}

// ControlOption configures a Control.
type Option func(*Control)

// WithTimeout sets the timeout of requests whose context has no deadline
// (default 5 s).
func WithTimeout(d time.Duration) Option { return func(c *Control) { c.timeout = d } }

// NewControl returns a Control on nc.
func New(nc *nats.Conn, opts ...Option) *Control {
	js, _ := jetstream.New(nc) // without options, New cannot fail
	c := &Control{nc: nc, js: js, timeout: 5 * time.Second, gatherWait: 150 * time.Millisecond}
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
		return fmt.Errorf("cannot send to %q: %w: message is not valid JSON", id, ErrBadRequest)
	}
	var ok api.OK
	return c.procRequest(ctx, id, bus.VerbSend, msg, &ok, "send to")
}

// Logs returns the last lines of a process's output.
func (c *Control) Logs(ctx context.Context, id string, lines int) (string, error) {
	var r api.LogsReply
	err := c.procRequest(ctx, id, bus.VerbLogs, api.LogsRequest{Lines: lines}, &r, "read logs of")
	return r.Log, err
}

func (c *Control) procRequest(ctx context.Context, id, verb string, req, reply any, what string) error {
	err := c.request(ctx, bus.ProcSubject(id, verb), req, reply)
	if errors.Is(err, nats.ErrNoResponders) {
		if owner, gone := c.ownerGone(ctx, id); gone {
			return fmt.Errorf("cannot %s %q: node %q is %w", what, id, owner, ErrUnreachable)
		}
		return fmt.Errorf("cannot %s %q: no such process: %w", what, id, ErrNotFound)
	}
	if err != nil {
		return wrapf(err, "cannot %s %q", what, id)
	}
	return nil
}

// wrapf says what could not be done, unless the node's error already does:
// the supervisor's messages start with "cannot <verb> <what>" themselves.
func wrapf(err error, format string, args ...any) error {
	var se *ServiceError
	if errors.As(err, &se) && strings.HasPrefix(se.Description, "cannot ") {
		return err
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
				err = fmt.Errorf("node %q is %w", n.ID, ErrUnreachable)
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
				errs = append(errs, fmt.Errorf("cannot stop %d %s on node %q: node %q is %w", left, what, id, id, ErrUnreachable))
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
		return out, fmt.Errorf("cannot define %q: node %q is %w", def.Name, nodeID, ErrUnreachable)
	}
	if err != nil {
		return out, fmt.Errorf("cannot define %q: %w", def.Name, err)
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
	m, err := c.nc.RequestWithContext(ctx, subject, data)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("no answer on %s: %w", subject, ErrTimeout)
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
		return nil, fmt.Errorf("%w: cannot encode request: %v", ErrBadRequest, err)
	}
	return b, nil
}

func decodeReply(m *nats.Msg, reply any) error {
	if desc := m.Header.Get(micro.ErrorHeader); desc != "" {
		code, _ := strconv.Atoi(m.Header.Get(micro.ErrorCodeHeader))
		return &ServiceError{Code: code, Description: desc}
	}
	if reply == nil {
		return nil
	}
	if err := json.Unmarshal(m.Data, reply); err != nil {
		return fmt.Errorf("%w: cannot decode reply: %v", ErrInternal, err)
	}
	return nil
}
