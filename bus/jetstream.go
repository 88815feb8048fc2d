package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// StreamName is the JetStream stream that keeps the event history: the
// lifecycle messages and children's events of process.> (HistorySubjects).
const StreamName = "CORRAL_EVENTS"

// RegistryBucket is the JetStream KV bucket of the node registry (package
// bus/registry).
const RegistryBucket = "CORRAL_NODES"

// DesiredBucket is the JetStream KV bucket of the cluster's desired state
// (package bus/desired).
const DesiredBucket = "CORRAL_DESIRED"

// StatsBucket is the JetStream KV bucket that keeps the latest stats of
// each process, key the process id, when the nodes are asked to
// ([nats] stats_store; package bus/relay).
const StatsBucket = "CORRAL_STATS"

// StatsKeySubject is the subject of a process's key in StatsBucket.
func StatsKeySubject(processID string) string { return "$KV." + StatsBucket + "." + processID }

// DuplicateWindow is how long the stream remembers a Nats-Msg-Id: an
// event published again within it (a resend after a lost ack) is stored
// once. The relay gives up on storing an event after StoreTimeout, no
// longer than this, so its own retries never outlive the window.
const DuplicateWindow = 2 * time.Minute

// StopWatch stops a KV watcher without waiting for the server. Stopping
// deletes the watcher's consumer with a JetStream API request that can
// wait seconds for an answer when the cluster has lost its quorum, as it
// does while nodes shut down together; the watcher stops receiving at
// once either way, and the server drops an ephemeral consumer nobody
// listens to on its own. The request ends with its timeout or when the
// connection closes.
func StopWatch(w jetstream.KeyWatcher) {
	go func() { _ = w.Stop() }()
}

// ErrNoJetStream says the NATS server has no JetStream (or not for this
// account), so there is no event history and no durable event.
var ErrNoJetStream = errors.New("JetStream is not available")

// MaxAutoReplicas is the most copies of the event stream AutoReplicas
// asks for: three copies survive the loss of one server and keep a
// quorum.
const MaxAutoReplicas = 3

// AutoReplicas is the rule behind nats.stream_replicas = 0 ("auto"), the
// only place it is written: given the number of NATS servers that can hold
// a copy, it returns how many copies the event stream gets, one per
// server up to MaxAutoReplicas. The node counts the servers as:
//   - an embedded server on its own (with or without leaf nodes): 1;
//   - an embedded cluster member: ClusterConfig.Members (distinct routes,
//     this server counted once);
//   - external servers: those the connection knows, the URLs it was given
//     or, when more, those the servers announced (see KnownServers).
func AutoReplicas(servers int) int {
	return min(max(servers, 1), MaxAutoReplicas)
}

// KnownServers is the number of distinct NATS servers a connection knows:
// the URLs it was given, or those the servers announced when there are
// more (they announce every member of their cluster, and may name a
// configured server by another address).
func KnownServers(nc *nats.Conn) int {
	discovered := map[string]bool{}
	for _, u := range nc.DiscoveredServers() {
		discovered[u] = true
	}
	configured := map[string]bool{}
	for _, u := range nc.Servers() {
		if !discovered[u] {
			configured[u] = true
		}
	}
	return max(len(configured), len(discovered))
}

// jetStreamPoll is how often WaitJetStream asks whether JetStream answers.
const jetStreamPoll = 250 * time.Millisecond

// WaitJetStream waits until JetStream answers for the account (in a
// cluster, once its servers elected a meta leader: about a second after
// every member came up on a first start), asking every quarter of a
// second, until ctx ends. It returns nil once JetStream is available; an
// error wrapping ErrNoJetStream at once when the server has no JetStream;
// otherwise ctx's error with the last answer.
func WaitJetStream(ctx context.Context, js jetstream.JetStream) error {
	for {
		// An attempt is bounded on its own: without a meta leader a
		// request may get no answer at all.
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := js.AccountInfo(actx)
		cancel()
		if err == nil {
			return nil
		}
		if IsNoJetStream(err) {
			return fmt.Errorf("%w: %w", ErrNoJetStream, err)
		}
		t := time.NewTimer(jetStreamPoll)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("JetStream is not ready: %w (last answer: %w)", ctx.Err(), err)
		}
	}
}

// IsNoJetStream reports whether err says the server has no JetStream (as
// opposed to a JetStream not ready yet).
func IsNoJetStream(err error) bool {
	return errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrJetStreamNotEnabled) ||
		errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount)
}
