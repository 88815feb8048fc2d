package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/corral-run/corral/client/wire"
)

// Config says which process the client speaks for and where the node
// listens. [ConfigFromEnv] fills it from the environment the node gives its
// children.
type Config struct {
	// ProcessID is the id the node gave the process. Required.
	ProcessID string
	// SocketPath is the node's Unix socket for this process. When empty,
	// the client uses TCPPort.
	SocketPath string
	// TCPPort is the node's loopback TCP port for this process.
	TCPPort int
	// Metadata is the JSON object the process was spawned with. Empty
	// means {}; anything that is not a JSON object is logged and read as {}.
	Metadata json.RawMessage
}

// ConfigFromEnv reads the Config the node put in the environment:
// DONKEYLABS_PROCESS_ID (required), DONKEYLABS_SOCKET_PATH or, when that is
// unset, DONKEYLABS_TCP_PORT, and DONKEYLABS_METADATA. The error wraps
// [ErrNotConfigured] and names the variable that is missing or wrong.
func ConfigFromEnv() (Config, error) {
	cfg := Config{
		ProcessID:  os.Getenv(wire.EnvProcessID),
		SocketPath: os.Getenv(wire.EnvSocketPath),
		Metadata:   json.RawMessage(os.Getenv(wire.EnvMetadata)),
	}
	if cfg.ProcessID == "" {
		return Config{}, errorf(ErrNotConfigured, "cannot connect to the Corral node: %s is not set (corrald sets it for every process it spawns)",
			wire.EnvProcessID)
	}
	if cfg.SocketPath != "" {
		return cfg, nil
	}
	port := os.Getenv(wire.EnvTCPPort)
	if port == "" {
		return Config{}, errorf(ErrNotConfigured, "cannot connect to the Corral node: neither %s nor %s is set",
			wire.EnvSocketPath, wire.EnvTCPPort)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return Config{}, errorf(ErrNotConfigured, "cannot connect to the Corral node: %s is %q, expected a port number (1-65535)",
			wire.EnvTCPPort, port)
	}
	cfg.TCPPort = n
	return cfg, nil
}

func (cfg Config) check() error {
	switch {
	case cfg.ProcessID == "":
		return errorf(ErrNotConfigured, "cannot connect to the Corral node: Config.ProcessID is empty")
	case cfg.SocketPath == "" && (cfg.TCPPort < 1 || cfg.TCPPort > 65535):
		return errorf(ErrNotConfigured, "cannot connect to the Corral node: Config has no SocketPath and no valid TCPPort (%d)", cfg.TCPPort)
	}
	return nil
}

// address is where the node listens, for dialing and for messages.
func (cfg Config) address() (network, addr string) {
	if cfg.SocketPath != "" {
		return "unix", cfg.SocketPath
	}
	return "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.TCPPort))
}

// state is where a client is in its life. Transitions:
//
//	idle -Connect-> connecting -dialled-> connected -lost-> reconnecting -dialled-> connected
//	connecting -failed-> idle; reconnecting -attempts exhausted-> gaveUp
//	any -Disconnect-> closed
type state int

const (
	stateIdle         state = iota // made by New; Connect not called yet, or it failed
	stateConnecting                // Connect is dialling
	stateConnected                 // a session is open
	stateReconnecting              // the session dropped; the supervisor is dialling
	stateGaveUp                    // terminal: every reconnect attempt failed
	stateClosed                    // terminal: Disconnect was called
)

// Client is a child's connection to its node. Make one with [Connect] or
// [New]. All methods are safe for concurrent use.
type Client struct {
	cfg  Config
	opts options
	log  *slog.Logger
	// envelope is `,"processId":"<id>","timestamp":`, the fixed part of
	// every line's tail.
	envelope []byte
	stats    statsSampler // used by the supervisor goroutine only

	// ctx is cancelled by Disconnect: it stops dialling and the supervisor.
	ctx    context.Context
	cancel context.CancelFunc

	handler atomic.Pointer[func(json.RawMessage)]
	inbox   inbox

	// wake (capacity 1) tells the writer there is output in out.
	wake chan struct{}

	mu      sync.Mutex
	state   state
	session *session
	out     []byte // lines queued for the writer
	spare   []byte // the writer's previous buffer, reused for out
	// changed, when not nil, is closed (and cleared) when the state
	// changes, the writer takes out or finishes a write, or answers come
	// in: an Emit or Flush waiting for any of these waits on it.
	changed chan struct{}
	// nextID is the number of events taken so far, and the last id given
	// (events are numbered from 1, with acks on and off).
	nextID uint64
	// pending holds the unanswered events (acks on only): this is the
	// buffer while the node is away.
	pending pendingQueue
	// With acks off the buffer is out: the events in out (outEvents, of
	// outBytes bytes) and those of the batch the writer is writing make the
	// held events, of heldBytes bytes, the last ones taken.
	outEvents, outBytes int
	held, heldBytes     int
	// finished is set when the client has stopped for good and failed the
	// events it held; failedFrom is the number of the first of them (0:
	// none failed).
	finished   bool
	failedFrom uint64
	// refusals counts the refusals nobody has seen (of events sent with
	// EmitAsync, or whose Emit stopped waiting), for the next Flush;
	// firstRefusal is the first of them.
	refusals     int
	firstRefusal *NodeError
	err          error // why the client stopped, once gaveUp or closed

	stopped  chan struct{} // closed when the supervisor (if any) has finished
	done     chan struct{} // closed when every goroutine has finished
	closeErr error         // the final flush's error, set before stopped closes
}

// New makes a client for cfg without connecting it; call [Client.Connect].
func New(cfg Config, opts ...Option) *Client {
	o := newOptions(opts)
	c := &Client{
		opts:    o,
		log:     o.log,
		stats:   newStatsSampler(),
		wake:    make(chan struct{}, 1),
		stopped: make(chan struct{}),
		done:    make(chan struct{}),
	}
	c.inbox.init()
	cfg.Metadata = normaliseMetadata(cfg.Metadata, o.log)
	c.cfg = cfg
	pid, _ := json.Marshal(cfg.ProcessID)
	c.envelope = append(append([]byte(`,"processId":`), pid...), `,"timestamp":`...)
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c
}

func normaliseMetadata(raw json.RawMessage, log *slog.Logger) json.RawMessage {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return json.RawMessage("{}")
	}
	if !json.Valid(raw) || raw[0] != '{' {
		log.Warn("process metadata is not a JSON object; using {}", "metadata", clip(raw))
		return json.RawMessage("{}")
	}
	return bytes.Clone(raw)
}

func clip(b []byte) string {
	if len(b) > 80 {
		return string(b[:80]) + "…"
	}
	return string(b)
}

// Connect reads the Config from the environment ([ConfigFromEnv]), makes a
// client and connects it ([Client.Connect]).
func Connect(ctx context.Context, opts ...Option) (*Client, error) {
	cfg, err := ConfigFromEnv()
	if err != nil {
		return nil, err
	}
	c := New(cfg, opts...)
	if err := c.Connect(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// Connect dials the node, retrying every reconnect interval up to the
// maximum number of reconnect attempts, sends "connected" and starts the
// heartbeats (and stats, when enabled). It returns once connected, when ctx
// ends, or when the attempts are exhausted (the error wraps [ErrGaveUp]).
// After a failure Connect may be called again. ctx bounds the dialling only.
func (c *Client) Connect(ctx context.Context) error {
	if err := c.cfg.check(); err != nil {
		return err
	}
	c.mu.Lock()
	switch c.state {
	case stateIdle:
	case stateClosed, stateGaveUp:
		err := c.err
		c.mu.Unlock()
		return fmt.Errorf("cannot connect: %w", err)
	default:
		c.mu.Unlock()
		return errors.New("cannot connect: already connected or connecting")
	}
	c.state = stateConnecting
	c.mu.Unlock()

	conn, err := c.dial(ctx, 1+c.opts.maxAttempts, false)
	if err == nil {
		if s := c.startSession(conn); s != nil {
			go c.dispatch()
			go c.run(s)
			return nil
		}
		conn.Close()
	}
	c.mu.Lock()
	closed := c.state == stateClosed
	if c.state == stateConnecting {
		c.state = stateIdle
		c.notifyLocked()
	}
	c.mu.Unlock()
	if closed {
		// Disconnect ran meanwhile and left the ending to us.
		close(c.stopped)
		close(c.done)
		return fmt.Errorf("cannot connect: %w", ErrClosed)
	}
	return err
}

// ProcessID is the id of the process the client speaks for.
func (c *Client) ProcessID() string { return c.cfg.ProcessID }

// Metadata is the JSON object the process was spawned with ({} when none).
func (c *Client) Metadata() json.RawMessage { return bytes.Clone(c.cfg.Metadata) }

// DecodeMetadata unmarshals the metadata into v.
func (c *Client) DecodeMetadata(v any) error {
	if err := json.Unmarshal(c.cfg.Metadata, v); err != nil {
		return fmt.Errorf("cannot decode process metadata: %w", err)
	}
	return nil
}

// Connected reports whether the client has an open connection to the node.
func (c *Client) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state == stateConnected
}

// OnMessage sets the handler for lines the node sends the process (with
// corralctl send or the Go API), replacing any previous one; nil removes
// it. Acks and error replies are not handed to it. The handler is called
// for one line at a time, in order, on a goroutine of the client; lines
// that arrive while no handler is set are dropped. A handler may call any
// method of the client, Disconnect included.
func (c *Client) OnMessage(fn func(msg json.RawMessage)) {
	if fn == nil {
		c.handler.Store(nil)
		return
	}
	c.handler.Store(&fn)
}

// Err reports why the client stopped for good: nil while it runs
// (connected or reconnecting) or before Connect, an error wrapping
// [ErrGaveUp] (and naming the address and the last dial error) once it
// gave up reconnecting, [ErrClosed] after Disconnect.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == stateGaveUp || c.state == stateClosed {
		return c.err
	}
	return nil
}

// Done is closed when the client has stopped for good — after Disconnect,
// or after it gave up reconnecting — and all its goroutines have ended,
// including a running OnMessage handler.
func (c *Client) Done() <-chan struct{} { return c.done }

// Disconnect sends "disconnecting", flushes what is queued, half-closes the
// connection, reads the node's last answers until the node closes its side,
// and stops the client's goroutines. Each of the flush and the wait is given
// up after 5 s without the node doing its part. Events still unanswered
// then fail with [ErrClosed] (Emits waiting for them return it). Called
// while the node is away, Disconnect does not wait for it to come back: the
// events held for it fail with ErrClosed at once; call [Client.Flush] first
// to wait for them. Disconnect does not wait for a running OnMessage
// handler (so the handler may call it); [Client.Done] does. Calling it
// again, or on a client that gave up, does nothing and returns nil. The
// error reports a failure to flush.
func (c *Client) Disconnect() error {
	c.mu.Lock()
	switch c.state {
	case stateIdle:
		c.state, c.err = stateClosed, ErrClosed
		c.mu.Unlock()
		c.cancel()
		close(c.stopped)
		close(c.done)
		return nil
	case stateClosed, stateGaveUp:
		c.mu.Unlock()
		<-c.stopped
		return nil
	case stateConnected:
		c.out = c.appendControl(c.out, wire.TypeDisconnecting, nil)
	}
	c.state, c.err = stateClosed, ErrClosed
	c.notifyLocked()
	c.mu.Unlock()
	c.signalWriter()
	c.cancel()
	<-c.stopped
	return c.closeErr
}

// notifyLocked wakes every Emit waiting for a change. c.mu is held.
func (c *Client) notifyLocked() {
	if c.changed != nil {
		close(c.changed)
		c.changed = nil
	}
}

// waitLocked releases c.mu and waits for the next change or for ctx.
func (c *Client) waitLocked(ctx context.Context) error {
	if c.changed == nil {
		c.changed = make(chan struct{})
	}
	ch := c.changed
	c.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *Client) signalWriter() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}
