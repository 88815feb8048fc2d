package daemon

import (
	"github.com/corral-run/corral/bus/registry"
	"github.com/corral-run/corral/config"
)

// registryConfig is where the node keeps its record: wherever JetStream
// may be (as for the event stream), in the node registry CORRAL_NODES,
// with the event stream's replicas. Without it, discovery is live only:
// gone nodes are not shown and node loss is not announced.
func registryConfig(cfg *config.Config) *registry.Config {
	rc := relayConfig(cfg)
	if rc.Stream == nil {
		return nil
	}
	return &registry.Config{Replicas: rc.Stream.Replicas}
}
