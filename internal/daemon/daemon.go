// Package daemon wires corrald together: the configuration, the NATS
// connection (embedded server or external cluster), the control service and
// the supervisor. cmd/node is a thin shell over it, and tests start whole
// nodes with it.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus"
	"github.com/corral-run/corral/bus/embedded"
	"github.com/corral-run/corral/bus/gateway"
	"github.com/corral-run/corral/bus/metrics"
	"github.com/corral-run/corral/bus/service"
	"github.com/corral-run/corral/config"
	"github.com/corral-run/corral/node"
)

// Daemon is one running node.
type Daemon struct {
	cfg *config.Config
	log *slog.Logger
	srv *embedded.Server // nil when connected to an external server
	nc  *nats.Conn
	svc *service.Service
	rep *metrics.Reporter // counts what the supervisor reports, for the metrics
	sup *node.Supervisor
	gw  *gateway.Gateway // nil without [http] listen

	recovered atomic.Bool // the previous node's children are recovered
	closing   atomic.Bool // Close has begun

	lock *dataDirLock // held for the node's life

	reloadMu sync.Mutex // one Reload at a time

	closeOnce sync.Once
	closeErr  error
}

// Start brings a node up: NATS, supervisor with the configured
// definitions, control service, then the HTTP gateway. On error everything
// started is stopped.
func Start(cfg *config.Config, logger *slog.Logger) (_ *Daemon, err error) {
	if logger == nil {
		logger = slog.Default()
	}
	d := &Daemon{cfg: cfg, log: logger.With("node", cfg.Node.ID)}
	defer func() {
		if err != nil {
			d.shutdownBus() // d, not the result: a failed Start returns nil
		}
	}()
	if d.lock, err = lockDataDir(cfg.Node.DataDir); err != nil {
		return nil, err
	}
	if err := d.connect(logger); err != nil {
		return nil, err
	}
	rc := relayConfig(cfg)
	if d.srv != nil {
		// The embedded server knows every listener, those of its cluster
		// peers and leaf nodes included: heartbeats and stats nobody
		// listens to are not sent.
		rc.Listened = d.srv.Listened
	}
	var reload func() (api.ReloadReply, error)
	if cfg.Path != "" { // a configuration built in code has no file to read again
		reload = d.Reload
	}
	d.svc = service.New(d.nc, service.Config{
		NodeID: cfg.Node.ID, Labels: cfg.Node.Labels, RemoteDefinitions: cfg.Node.RemoteDefinitions, Relay: rc,
		HeartbeatInterval: cfg.Node.HeartbeatInterval, Registry: registryConfig(cfg), Logger: logger,
		Reload: reload,
	})
	if err := d.setUpStream(); err != nil {
		return nil, err
	}
	d.rep = metrics.NewReporter(d.svc)
	d.sup, err = node.New(node.Config{
		NodeID: cfg.Node.ID, SocketDir: cfg.Node.SocketDir, Transport: string(cfg.Node.Transport),
		LogDir: filepath.Join(cfg.Node.DataDir, "logs"), StateDir: filepath.Join(cfg.Node.DataDir, "state"),
		MaxLineBytes: cfg.Node.MaxLineBytes,
		// A child alone is paced before the node's bound of events
		// waiting for storage would refuse its events.
		EventWindow:   min(node.DefaultEventWindow, max(cfg.NATS.PublishBuffer, 1)),
		StatsInterval: cfg.Node.StatsInterval, Retention: cfg.Node.Retention, RetentionMax: cfg.Node.RetentionMax,
		MaxProcesses: cfg.Node.MaxProcesses,
		LogMaxBytes:  cfg.Node.LogMaxBytes, LogMaxFiles: cfg.Node.LogMaxFiles, HandshakeTimeout: cfg.Node.HandshakeTimeout,
		Reporter: d.rep, Logger: logger,
	})
	if err != nil {
		return nil, err
	}
	for _, def := range cfg.Processes {
		if err := d.sup.Define(def); err != nil {
			return nil, err
		}
		d.rep.Define(def.Name)
	}
	if res := d.sup.Recover(); len(res.Adopted)+len(res.Lost)+len(res.Ended)+len(res.Orphans)+res.Corrupt > 0 {
		d.log.Info("recovered children of the previous node", "adopted", len(res.Adopted), "lost", len(res.Lost),
			"ended", len(res.Ended), "orphans", len(res.Orphans), "corrupt", res.Corrupt)
	}
	d.recovered.Store(true)
	if err := d.svc.Serve(d.sup); err != nil {
		return nil, err
	}
	if started, err := d.sup.EnsureInstances(); err != nil {
		d.log.Error("not every instance could start; retrying", "err", err)
	} else if len(started) > 0 {
		d.log.Info("instances started", "count", len(started))
	}
	if err := d.startGateway(logger); err != nil {
		return nil, err
	}
	d.log.Info("node started", "nats", bus.RedactURLs(d.ClientURL()), "http", d.HTTPURL(), "definitions", len(cfg.Processes))
	return d, nil
}

// ClientURL is where NATS clients (corralctl, nats) reach this node's bus.
func (d *Daemon) ClientURL() string {
	if d.srv != nil {
		return d.srv.ClientURL()
	}
	return d.nc.ConnectedUrl()
}

// Supervisor is the node's supervisor (for Go callers and tests).
func (d *Daemon) Supervisor() *node.Supervisor { return d.sup }

// Conn is the node's NATS connection.
func (d *Daemon) Conn() *nats.Conn { return d.nc }

// RegistryView is what the node knows of every node, as it answers
// corral.registry (what placement by labels reads).
func (d *Daemon) RegistryView() api.RegistryView {
	v, _ := d.svc.RegistryView(api.RegistryRequest{})
	return v
}

// Close shuts the node down as configured (node.shutdown): it stops every
// child, or with "detach" leaves them running for the next node to
// re-adopt; then it closes the HTTP gateway, the control service, the
// connection and the embedded server. Only the first call does anything; later ones return
// its error.
func (d *Daemon) Close(ctx context.Context) error {
	d.closeOnce.Do(func() { d.closeErr = d.close(ctx) })
	return d.closeErr
}

func (d *Daemon) close(ctx context.Context) error {
	d.closing.Store(true) // /readyz says so from now on
	var errs []error
	if d.svc != nil {
		d.svc.Relay().Release() // children's reports stop waiting for NATS, so shutdown cannot stall on an outage
	}
	switch {
	case d.sup == nil:
	case d.cfg.Node.Shutdown == config.ShutdownDetach:
		errs = append(errs, d.sup.Detach(ctx))
	default:
		errs = append(errs, d.sup.Close(ctx))
	}
	errs = append(errs, d.shutdownBus())
	d.log.Info("node stopped")
	return errors.Join(errs...)
}

func (d *Daemon) shutdownBus() error {
	errs := []error{d.closeGateway()} // a client of the bus: it goes first
	if d.svc != nil {
		errs = append(errs, d.svc.Close())
	}
	if d.nc != nil {
		if err := d.nc.FlushTimeout(2 * time.Second); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			errs = append(errs, fmt.Errorf("cannot flush NATS connection: %w", err))
		}
		d.nc.Close()
	}
	if d.srv != nil {
		d.srv.Shutdown()
		d.srv.WaitForShutdown()
	}
	d.lock.release() // last: the next node may have the data directory now
	return errors.Join(errs...)
}
