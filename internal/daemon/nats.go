package daemon

import (
	"log/slog"

	"github.com/corral-run/corral/bus"
	"github.com/corral-run/corral/bus/embedded"
	"github.com/corral-run/corral/config"
)

// connect puts the node on NATS: its embedded server (users, TLS,
// cluster, leaf) and an in-process connection to it, or a connection to
// the external servers of nats.url, signed in as [nats] says.
func (d *Daemon) connect(logger *slog.Logger) error {
	cfg := d.cfg
	name := "corrald " + cfg.Node.ID
	if !cfg.NATS.Embedded() {
		c := cfg.NATS.Client
		o := bus.ClientOptions{Servers: cfg.NATS.URL, User: c.User, Password: c.Password, Token: c.Token,
			Creds: c.Creds, Nkey: c.Nkey, InboxPrefix: "_INBOX"}
		if t := cfg.NATS.TLS; t != nil {
			o.TLSCert, o.TLSKey, o.TLSCA = t.Cert, t.Key, t.CA
		}
		opts, err := o.NATSOptions()
		if err != nil {
			return err
		}
		d.nc, err = bus.Connect(cfg.NATS.URL, name, logger, opts...)
		return err
	}
	var err error
	d.srv, err = embedded.Start(embedded.Config{
		Name: cfg.Node.ID, Listen: cfg.NATS.Listen, JetStream: cfg.NATS.JetStream,
		StoreDir: cfg.Node.DataDir, Logger: logger,
		Cluster: clusterConfig(cfg.NATS), Leaf: leafConfig(cfg.NATS),
		Users: users(cfg.NATS.Users), TLS: tlsConfig(cfg.NATS.TLS), Insecure: cfg.NATS.Insecure,
		MaxPayload: cfg.NATS.MaxPayload, Monitor: cfg.NATS.Monitor,
		WebSocket: embedded.WebSocketConfig{Listen: cfg.NATS.WebSocket.Listen, TLS: tlsConfig(cfg.NATS.WebSocket.TLS)},
	})
	if err != nil {
		return err
	}
	for _, l := range d.srv.Insecure() {
		d.log.Warn("insecure: anyone who reaches this listener may run commands on this host ([nats] insecure = true)", "listener", l)
	}
	for _, u := range cfg.NATS.Users {
		if u.PlainPassword() {
			d.log.Warn("a user's password is written in plain text in the configuration: write a bcrypt hash instead", "user", u.Name)
		}
	}
	d.nc, err = d.srv.Connect(name)
	return err
}

// clusterConfig is the embedded server's [nats.cluster].
func clusterConfig(n config.NATSConfig) embedded.ClusterConfig {
	return embedded.ClusterConfig{Name: n.Cluster.Name, Listen: n.Cluster.Listen, Routes: n.Cluster.Routes,
		User: n.Cluster.User, Password: n.Cluster.Password, TLS: tlsConfig(n.Cluster.TLS)}
}

// leafConfig is the embedded server's [nats.leaf].
func leafConfig(n config.NATSConfig) embedded.LeafConfig {
	return embedded.LeafConfig{Remotes: n.Leaf.Remotes, Listen: n.Leaf.Listen,
		User: n.Leaf.User, Password: n.Leaf.Password, TLS: tlsConfig(n.Leaf.TLS)}
}

func tlsConfig(t *config.TLSConfig) *embedded.TLS {
	if t == nil {
		return nil
	}
	return &embedded.TLS{Cert: t.Cert, Key: t.Key, CA: t.CA, Verify: t.Verify}
}

func users(us []config.User) []embedded.User {
	out := make([]embedded.User, len(us))
	for i, u := range us {
		out[i] = embedded.User{Name: u.Name, Password: u.Password, Nkey: u.Nkey, Role: u.Role}
	}
	return out
}
