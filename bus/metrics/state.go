package metrics

import (
	"sort"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/node"
)

// State is where a node's metrics read its state at scrape time. Every
// field may be nil: its metrics are then left out.
type State struct {
	// Processes lists the node's processes (the supervisor's GetAll).
	Processes func() []api.ManagedProcess
	// Lines counts the answers to the children's lines (the supervisor's
	// LineStats); Connections counts their open connections.
	Lines       func() node.LineStats
	Connections func() int
	// Relay is the node's relay.
	Relay Relay
	// Conn is the node's NATS connection.
	Conn *nats.Conn
	// Host is the node's host as last sampled (the control service's Host).
	Host func() *api.HostStats
	// EventStreams counts the HTTP gateway's open event streams (SSE).
	EventStreams func() int
}

// Relay is what State reads of the node's relay (bus/relay.Relay).
type Relay interface {
	Dropped() uint64
	StorePending() int
	Backlog() int
	Durable() bool
}

// stateCollector is a prometheus.Collector of State.
type stateCollector struct {
	st State

	processes, cpu, memory                           *prometheus.Desc
	acked, rejected, connections                     *prometheus.Desc
	dropped, storePending, backlog, durable          *prometheus.Desc
	natsConnected, natsReconnects, natsIn, natsOut   *prometheus.Desc
	natsInBytes, natsOutBytes                        *prometheus.Desc
	hostCPU, hostMemUsed, hostMemTotal, eventStreams *prometheus.Desc
}

func newStateCollector(st State) *stateCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &stateCollector{
		st:             st,
		processes:      d("corral_processes", "Processes this node knows (finished ones as long as they stay listed), by definition and status.", "definition", "status"),
		cpu:            d("corral_process_cpu_percent", "CPU of running processes' trees as the node last sampled them, in percent of one core, by definition and instance; processes spawned on demand (instance \"\") are summed.", "definition", "instance"),
		memory:         d("corral_process_memory_bytes", "Resident memory of running processes' trees as the node last sampled them, by definition and instance; processes spawned on demand (instance \"\") are summed.", "definition", "instance"),
		acked:          d("corral_events_acked_total", "Children's events acknowledged to them (handed to NATS, or stored by JetStream with durable events)."),
		rejected:       d("corral_lines_rejected_total", "Children's lines the node refused, by wire error code (malformed, schema_invalid, line_too_long, unavailable…).", "reason"),
		connections:    d("corral_child_connections", "Children's connections open on the node's sockets."),
		dropped:        d("corral_relay_dropped_total", "Messages lost on their way to NATS (the target is zero)."),
		storePending:   d("corral_durable_store_pending", "Durable events and lifecycle messages waiting for JetStream to store them (the children's acks wait too): the durable store's lag."),
		backlog:        d("corral_relay_backlog", "Messages waiting for NATS to come back."),
		durable:        d("corral_durable", "1 when a child's ack of an event waits until JetStream stored it."),
		natsConnected:  d("corral_nats_connected", "1 while the node's NATS connection is up."),
		natsReconnects: d("corral_nats_reconnects_total", "Times the node's NATS connection reconnected."),
		natsIn:         d("corral_nats_messages_in_total", "Messages the node's NATS connection received."),
		natsOut:        d("corral_nats_messages_out_total", "Messages the node's NATS connection sent."),
		natsInBytes:    d("corral_nats_bytes_in_total", "Bytes the node's NATS connection received."),
		natsOutBytes:   d("corral_nats_bytes_out_total", "Bytes the node's NATS connection sent."),
		hostCPU:        d("corral_host_cpu_percent", "The host's CPU use between the node's last two heartbeats, 0 to 100."),
		hostMemUsed:    d("corral_host_memory_used_bytes", "The host's memory in use."),
		hostMemTotal:   d("corral_host_memory_total_bytes", "The host's memory."),
		eventStreams:   d("corral_http_event_streams", "Event streams (SSE) the HTTP gateway serves now."),
	}
}

// Describe implements prometheus.Collector.
func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.processes, c.cpu, c.memory, c.acked, c.rejected, c.connections,
		c.dropped, c.storePending, c.backlog, c.durable, c.natsConnected, c.natsReconnects, c.natsIn, c.natsOut,
		c.natsInBytes, c.natsOutBytes, c.hostCPU, c.hostMemUsed, c.hostMemTotal, c.eventStreams} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	st := c.st
	if st.Processes != nil {
		c.collectProcesses(st.Processes(), gauge)
	}
	if st.Lines != nil {
		ls := st.Lines()
		counter(c.acked, float64(ls.Acked))
		for _, code := range sortedKeys(ls.Rejected) {
			counter(c.rejected, float64(ls.Rejected[code]), code)
		}
	}
	if st.Connections != nil {
		gauge(c.connections, float64(st.Connections()))
	}
	if st.Relay != nil {
		counter(c.dropped, float64(st.Relay.Dropped()))
		gauge(c.storePending, float64(st.Relay.StorePending()))
		gauge(c.backlog, float64(st.Relay.Backlog()))
		gauge(c.durable, boolValue(st.Relay.Durable()))
	}
	if st.Conn != nil {
		s := st.Conn.Stats()
		gauge(c.natsConnected, boolValue(st.Conn.IsConnected()))
		counter(c.natsReconnects, float64(s.Reconnects))
		counter(c.natsIn, float64(s.InMsgs))
		counter(c.natsOut, float64(s.OutMsgs))
		counter(c.natsInBytes, float64(s.InBytes))
		counter(c.natsOutBytes, float64(s.OutBytes))
	}
	if st.Host != nil {
		if h := st.Host(); h != nil {
			gauge(c.hostCPU, h.CPUPercent)
			gauge(c.hostMemUsed, float64(h.MemUsedBytes))
			gauge(c.hostMemTotal, float64(h.MemTotalBytes))
		}
	}
	if st.EventStreams != nil {
		gauge(c.eventStreams, float64(st.EventStreams()))
	}
}

// collectProcesses counts the processes by definition and status, and
// sums the CPU and memory of the running ones by definition and instance.
func (c *stateCollector) collectProcesses(ps []api.ManagedProcess, gauge func(*prometheus.Desc, float64, ...string)) {
	type statusKey struct{ def, status string }
	type instanceKey struct{ def, instance string }
	type usage struct{ cpu, mem float64 }
	byStatus := map[statusKey]int{}
	byInstance := map[instanceKey]*usage{}
	for _, p := range ps {
		byStatus[statusKey{p.Name, string(p.Status)}]++
		if p.Status.Finished() || p.Stats == nil {
			continue
		}
		k := instanceKey{p.Name, p.Instance}
		u := byInstance[k]
		if u == nil {
			u = &usage{}
			byInstance[k] = u
		}
		u.cpu += p.Stats.CPU.Percent
		u.mem += p.Stats.Memory.RSS
	}
	for k, n := range byStatus {
		gauge(c.processes, float64(n), k.def, k.status)
	}
	for k, u := range byInstance {
		gauge(c.cpu, u.cpu, k.def, k.instance)
		gauge(c.memory, u.mem, k.def, k.instance)
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
