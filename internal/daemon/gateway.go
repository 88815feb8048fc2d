package daemon

import (
	"context"
	"log/slog"
	"time"

	"github.com/corral-run/corral/bus/control"
	"github.com/corral-run/corral/bus/gateway"
	"github.com/corral-run/corral/bus/metrics"
)

// startGateway starts the node's HTTP listener ([http]): the cluster's
// API and events, this node's metrics and readiness, the dashboard. It is
// a client of the cluster on the node's own connection.
func (d *Daemon) startGateway(logger *slog.Logger) error {
	h := d.cfg.HTTP
	if h.Listen == "" {
		return nil
	}
	tokens := make([]gateway.Token, len(h.Tokens))
	for i, t := range h.Tokens {
		tokens[i] = gateway.Token{Token: t.Token, Role: t.Role}
	}
	var tls *gateway.TLS
	if h.TLS != nil {
		tls = &gateway.TLS{Cert: h.TLS.Cert, Key: h.TLS.Key}
	}
	var gw *gateway.Gateway
	reg := metrics.NewRegistry(d.rep, metrics.State{
		Processes: d.sup.GetAll, Lines: d.sup.LineStats, Connections: d.sup.Connections,
		Relay: d.svc.Relay(), Conn: d.nc, Host: d.svc.Host,
		EventStreams: func() int { return gw.Streams() },
	})
	gw, err := gateway.New(control.New(d.nc), gateway.Config{
		Listen: h.Listen, Tokens: tokens, TLS: tls, Insecure: h.Insecure, NodeID: d.cfg.Node.ID,
		Metrics: metrics.Handler(reg, logger), Ready: d.readiness, Logger: logger.With("node", d.cfg.Node.ID),
	})
	if err != nil {
		return err
	}
	if gw.Insecure() {
		d.log.Warn("insecure: anyone who reaches the HTTP gateway may use it without a token or TLS ([http] insecure = true)", "listen", h.Listen)
	}
	if err := gw.Start(); err != nil {
		return err
	}
	d.gw = gw
	return nil
}

// readiness is what /readyz checks: NATS connected, the control service
// registered, the previous node's children recovered, not shutting down,
// not cut off from the cluster.
func (d *Daemon) readiness() []gateway.Check {
	checks := []gateway.Check{
		{Name: "nats", OK: d.nc.IsConnected(), Detail: "connected"},
		{Name: "control", OK: d.svc.Serving(), Detail: "the control service is registered"},
		{Name: "recovered", OK: d.recovered.Load(), Detail: "the previous node's children are recovered"},
		{Name: "running", OK: !d.closing.Load(), Detail: "serving"},
		{Name: "cluster", OK: !d.svc.Isolated(), Detail: "sees a majority of the nodes it knows"},
	}
	if !checks[0].OK {
		checks[0].Detail = "not connected to NATS (" + d.nc.Status().String() + ")"
	}
	if !checks[1].OK {
		checks[1].Detail = "the control service is not registered"
	}
	if !checks[2].OK {
		checks[2].Detail = "recovering the previous node's children"
	}
	if !checks[3].OK {
		checks[3].Detail = "shutting down"
	}
	if !checks[4].OK {
		checks[4].Detail = "isolated: it sees fewer than half of the nodes it knows (a network partition?); it keeps its children running and declares nobody lost"
	}
	return checks
}

// HTTPURL is the base URL of the node's HTTP gateway, "" without one.
func (d *Daemon) HTTPURL() string {
	if d.gw == nil {
		return ""
	}
	return d.gw.URL()
}

// gatewayCloseTimeout bounds the wait for the gateway's requests on Close.
const gatewayCloseTimeout = 5 * time.Second

func (d *Daemon) closeGateway() error {
	if d.gw == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), gatewayCloseTimeout)
	defer cancel()
	return d.gw.Close(ctx)
}
