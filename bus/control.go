package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
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
	timeout time.Duration
	// gatherWait is how long a scatter-gather waits for more answers after
	// the last one.
	gatherWait time.Duration
}

// ControlOption configures a Control.
type ControlOption func(*Control)

// WithTimeout sets the timeout of requests whose context has no deadline
// (default 5 s).
func WithTimeout(d time.Duration) ControlOption { return func(c *Control) { c.timeout = d } }

// NewControl returns a Control on nc.
func NewControl(nc *nats.Conn, opts ...ControlOption) *Control {
	c := &Control{nc: nc, timeout: 5 * time.Second, gatherWait: 150 * time.Millisecond}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Spawn starts a process of the named definition: on the node nodeID, or
// when nodeID is empty on any node that defines name.
func (c *Control) Spawn(ctx context.Context, nodeID, name string, req SpawnRequest) (ManagedProcess, error) {
	var mp ManagedProcess
	subject := SpawnSubject(name)
	if nodeID != "" {
		subject = NodeSubject(nodeID, VerbSpawn)
		req.Name = name
	}
	err := c.request(ctx, subject, req, &mp)
	if errors.Is(err, nats.ErrNoResponders) {
		if nodeID != "" {
			return mp, fmt.Errorf("cannot spawn %q: node %q is %w", name, nodeID, ErrUnreachable)
		}
		return mp, fmt.Errorf("cannot spawn %q: no node defines it: %w", name, ErrNotFound)
	}
	if err != nil {
		return mp, wrapf(err, "cannot spawn %q", name)
	}
	return mp, nil
}

// Get returns one process, from the node that owns it.
func (c *Control) Get(ctx context.Context, id string) (ManagedProcess, error) {
	var mp ManagedProcess
	return mp, c.procRequest(ctx, id, VerbGet, nil, &mp, "get")
}

// Stop stops a process (signal "" means the definition's stop signal) and
// returns it once it has exited.
func (c *Control) Stop(ctx context.Context, id, signal string) (ManagedProcess, error) {
	var mp ManagedProcess
	return mp, c.procRequest(ctx, id, VerbStop, StopRequest{Signal: signal}, &mp, "stop")
}

// Restart restarts a process and returns the new one.
func (c *Control) Restart(ctx context.Context, id string) (ManagedProcess, error) {
	var mp ManagedProcess
	return mp, c.procRequest(ctx, id, VerbRestart, nil, &mp, "restart")
}

// Send writes one JSON value to a process's connection.
func (c *Control) Send(ctx context.Context, id string, msg json.RawMessage) error {
	if !json.Valid(msg) {
		return fmt.Errorf("cannot send to %q: %w: message is not valid JSON", id, ErrBadRequest)
	}
	var ok OK
	return c.procRequest(ctx, id, VerbSend, msg, &ok, "send to")
}

// Logs returns the last lines of a process's output.
func (c *Control) Logs(ctx context.Context, id string, lines int) (string, error) {
	var r LogsReply
	err := c.procRequest(ctx, id, VerbLogs, LogsRequest{Lines: lines}, &r, "read logs of")
	return r.Log, err
}

func (c *Control) procRequest(ctx context.Context, id, verb string, req, reply any, what string) error {
	err := c.request(ctx, ProcSubject(id, verb), req, reply)
	if errors.Is(err, nats.ErrNoResponders) {
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

// ListResult gathers the answers of every node.
type ListResult struct {
	Processes []ManagedProcess `json:"processes"`
	Nodes     []string         `json:"nodes"`
}

// List returns the processes of every node that answers in time, sorted by
// node then start time.
func (c *Control) List(ctx context.Context, req ListRequest) (ListResult, error) {
	msgs, err := c.gather(ctx, SubjectList, req)
	if err != nil {
		return ListResult{}, fmt.Errorf("cannot list processes: %w", err)
	}
	res := ListResult{Processes: []ManagedProcess{}, Nodes: []string{}}
	for _, m := range msgs {
		var lr ListReply
		if err := decodeReply(m, &lr); err != nil {
			return ListResult{}, fmt.Errorf("cannot list processes: %w", err)
		}
		res.Nodes = append(res.Nodes, lr.Node)
		res.Processes = append(res.Processes, lr.Processes...)
	}
	sort.Strings(res.Nodes)
	sort.SliceStable(res.Processes, func(i, j int) bool {
		a, b := res.Processes[i], res.Processes[j]
		if a.Node != b.Node {
			return a.Node < b.Node
		}
		return a.StartedAt.Before(b.StartedAt)
	})
	return res, nil
}

// StopAll stops every running process (of one name when name is not empty)
// on every node, and returns the processes it stopped.
func (c *Control) StopAll(ctx context.Context, name, signal string) ([]ManagedProcess, error) {
	nodes, err := c.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	var out []ManagedProcess
	var errs []error
	for _, n := range nodes {
		var lr ListReply
		if err := c.request(ctx, NodeSubject(n.ID, VerbStopAll), StopAllRequest{Signal: signal, Name: name}, &lr); err != nil {
			errs = append(errs, fmt.Errorf("cannot stop processes on node %q: %w", n.ID, err))
		}
		out = append(out, lr.Processes...)
	}
	return out, errors.Join(errs...)
}

// Nodes returns every node that answers in time, sorted by id.
func (c *Control) Nodes(ctx context.Context) ([]NodeInfo, error) {
	subject, _ := micro.ControlSubject(micro.PingVerb, ServiceName, "")
	pings, err := c.gather(ctx, subject, nil)
	if err != nil {
		return nil, fmt.Errorf("cannot list nodes: %w", err)
	}
	var out []NodeInfo
	for _, m := range pings {
		var ping micro.Ping
		if err := json.Unmarshal(m.Data, &ping); err != nil || ping.Metadata["node"] == "" {
			continue
		}
		var info NodeInfo
		if err := c.request(ctx, NodeSubject(ping.Metadata["node"], VerbInfo), nil, &info); err != nil {
			return nil, fmt.Errorf("cannot describe node %q: %w", ping.Metadata["node"], err)
		}
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Definitions returns each node's definitions, sorted by node.
func (c *Control) Definitions(ctx context.Context) ([]DefinitionsReply, error) {
	nodes, err := c.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]DefinitionsReply, 0, len(nodes))
	for _, n := range nodes {
		var dr DefinitionsReply
		if err := c.request(ctx, NodeSubject(n.ID, VerbDefinitions), nil, &dr); err != nil {
			return nil, fmt.Errorf("cannot list definitions of node %q: %w", n.ID, err)
		}
		out = append(out, dr)
	}
	return out, nil
}

// Define adds or replaces a definition on one node.
func (c *Control) Define(ctx context.Context, nodeID string, def DefinitionInfo) (DefinitionInfo, error) {
	var out DefinitionInfo
	err := c.request(ctx, NodeSubject(nodeID, VerbDefine), def, &out)
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

// gather sends a request every node answers and collects the answers until
// none has come for gatherWait after the first, or the timeout.
func (c *Control) gather(ctx context.Context, subject string, req any) ([]*nats.Msg, error) {
	data, err := encodeRequest(req)
	if err != nil {
		return nil, err
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	inbox := c.nc.NewRespInbox()
	ch := make(chan *nats.Msg, 64)
	sub, err := c.nc.ChanSubscribe(inbox, ch)
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	if err := c.nc.PublishRequest(subject, inbox, data); err != nil {
		return nil, err
	}
	var out []*nats.Msg
	var idle <-chan time.Time
	for {
		select {
		case m := <-ch:
			if m.Header.Get("Status") == "503" { // no responders
				return out, nil
			}
			out = append(out, m)
			idle = time.After(c.gatherWait)
		case <-idle:
			return out, nil
		case <-ctx.Done():
			if len(out) > 0 {
				return out, nil
			}
			return nil, fmt.Errorf("no answer on %s: %w", subject, ErrTimeout)
		}
	}
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
