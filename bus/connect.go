package bus

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// Connect connects to external NATS servers (a comma-separated list of
// URLs), reconnecting forever, retrying the first connection too.
func Connect(urls, name string, logger *slog.Logger, opts ...nats.Option) (*nats.Conn, error) {
	if logger == nil {
		logger = slog.Default()
	}
	all := append([]nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		nats.RetryOnFailedConnect(true),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			logger.Warn("disconnected from NATS", "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			logger.Info("reconnected to NATS", "url", nc.ConnectedUrl())
		}),
	}, opts...)
	nc, err := nats.Connect(strings.TrimSpace(urls), all...)
	if err != nil {
		return nil, fmt.Errorf("cannot connect to NATS at %s: %w", urls, err)
	}
	return nc, nil
}
