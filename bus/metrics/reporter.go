package metrics

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/node"
)

// latencySample is one in how many events the relay's latency is measured:
// the others cost only their counter.
const latencySample = 16

// kindNames name node.Report kinds in corral_reports_total.
var kindNames = map[node.Kind]string{
	node.KindSpawned: "spawned", node.KindConnected: "connected", node.KindReconnected: "reconnected",
	node.KindHeartbeat: "heartbeat", node.KindStats: "stats", node.KindStale: "stale", node.KindStopped: "stopped",
	node.KindCrashed: "crashed", node.KindRestarted: "restarted", node.KindRestartLimit: "restart_limit",
	node.KindLimitsExceeded: "limits_exceeded", node.KindWatchdogStale: "watchdog_stale",
	node.KindWatchdogKilled: "watchdog_killed", node.KindEvent: "event",
}

// maxKind bounds the kinds counted; a kind beyond it is counted as the
// last one ("other").
const maxKind = 32

// Reporter is a node.Reporter that counts what the supervisor reports,
// then hands every report to the next Reporter (the control service). It
// is a prometheus.Collector of those counters. Safe for concurrent use.
//
// Per report it adds one to an atomic counter; lifecycle reports (spawns,
// crashes…, rare by nature) also count by definition. One event in
// latencySample is timed: from the report to its acceptance (Report.Done:
// handed to NATS, or stored by JetStream), or for an event nobody waits
// for, the Publish call.
type Reporter struct {
	next   node.Reporter
	kinds  [maxKind]atomic.Uint64
	errors atomic.Uint64

	spawns, restarts, crashes, stops, stale, restartLimits *prometheus.CounterVec
	watchdogKills, limitKills                              *prometheus.CounterVec
	latency                                                prometheus.Histogram

	reportsDesc, errorsDesc *prometheus.Desc
}

var (
	_ node.Reporter        = (*Reporter)(nil)
	_ prometheus.Collector = (*Reporter)(nil)
)

// NewReporter returns a Reporter handing reports on to next.
func NewReporter(next node.Reporter) *Reporter {
	byDef := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{"definition"})
	}
	byReason := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{"definition", "reason"})
	}
	return &Reporter{
		next:          next,
		spawns:        byDef("corral_spawns_total", "Processes started (process.spawned), restarts included."),
		restarts:      byDef("corral_restarts_total", "Processes restarted (process.restarted), automatically or on request."),
		crashes:       byDef("corral_crashes_total", "Processes that crashed (process.crashed), watchdog kills included."),
		stops:         byDef("corral_stops_total", "Processes that stopped (process.stopped): a clean exit or a stop asked for."),
		stale:         byDef("corral_stale_total", "Heartbeats overdue (process.stale), once per episode."),
		restartLimits: byDef("corral_restart_limits_total", "Auto-restarts given up (process.restart_limit)."),
		watchdogKills: byReason("corral_watchdog_kills_total", "Processes the watchdog killed (process.watchdog.killed), by reason: heartbeat, maxRuntimeMs, maxMemoryMb, maxCpuPercent."),
		limitKills:    byReason("corral_limit_kills_total", "Hard limits exceeded (process.limits_exceeded), by limit: maxRuntimeMs, maxMemoryMb, maxCpuPercent."),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "corral_relay_latency_seconds",
			Help: "Time from a child's event to its acceptance: handed to NATS, or stored by JetStream with durable events (one event in 16 is timed).",
			// 100µs to about 7s.
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 9),
		}),
		reportsDesc: prometheus.NewDesc("corral_reports_total",
			"Reports the supervisor handed to the relay, by kind (event is a child's event: the events relayed).", []string{"kind"}, nil),
		errorsDesc: prometheus.NewDesc("corral_relay_errors_total",
			"Reports the relay refused (closed, backlog full): what the child was told was unavailable.", nil, nil),
	}
}

// Define starts the series of definitions at zero, so that a scraper
// sees every family (and rate() its first increase) before anything
// happens; a definition not given here gets its series when its first
// report counts.
func (r *Reporter) Define(names ...string) {
	for _, name := range names {
		for _, c := range []*prometheus.CounterVec{r.spawns, r.restarts, r.crashes, r.stops, r.stale, r.restartLimits} {
			c.WithLabelValues(name)
		}
		for _, reason := range []string{api.ReasonHeartbeat, api.ReasonRuntime, api.ReasonMemory, api.ReasonCPU} {
			r.watchdogKills.WithLabelValues(name, reason)
		}
		for _, reason := range []string{api.ReasonRuntime, api.ReasonMemory, api.ReasonCPU} {
			r.limitKills.WithLabelValues(name, reason)
		}
	}
}

// Publish implements node.Reporter.
func (r *Reporter) Publish(rep node.Report) error {
	k := min(int(rep.Kind), maxKind-1)
	n := r.kinds[k].Add(1)
	switch rep.Kind {
	case node.KindEvent:
		if n%latencySample == 0 {
			return r.timed(rep)
		}
	case node.KindSpawned:
		r.spawns.WithLabelValues(rep.Name).Inc()
	case node.KindRestarted:
		r.restarts.WithLabelValues(rep.Name).Inc()
	case node.KindCrashed:
		r.crashes.WithLabelValues(rep.Name).Inc()
	case node.KindStopped:
		r.stops.WithLabelValues(rep.Name).Inc()
	case node.KindStale:
		r.stale.WithLabelValues(rep.Name).Inc()
	case node.KindRestartLimit:
		r.restartLimits.WithLabelValues(rep.Name).Inc()
	case node.KindWatchdogKilled:
		reason := ""
		if p, ok := rep.Payload.(api.WatchdogKilled); ok {
			reason = p.Reason
		}
		r.watchdogKills.WithLabelValues(rep.Name, reason).Inc()
	case node.KindLimitsExceeded:
		reason := ""
		if p, ok := rep.Payload.(api.LimitsExceeded); ok {
			reason = p.Reason
		}
		r.limitKills.WithLabelValues(rep.Name, reason).Inc()
	}
	return r.publish(rep)
}

func (r *Reporter) publish(rep node.Report) error {
	err := r.next.Publish(rep)
	if err != nil {
		r.errors.Add(1)
	}
	return err
}

// timed publishes rep and observes its latency.
func (r *Reporter) timed(rep node.Report) error {
	start := time.Now()
	if done := rep.Done; done != nil {
		rep.Done = func(err error) {
			if err == nil {
				r.latency.Observe(time.Since(start).Seconds())
			}
			done(err)
		}
		return r.publish(rep)
	}
	err := r.publish(rep)
	if err == nil {
		r.latency.Observe(time.Since(start).Seconds())
	}
	return err
}

// Forget hands a pruned record on to the next Reporter, when it wants to
// know (see node.Config.Reporter).
func (r *Reporter) Forget(id string) {
	if f, ok := r.next.(interface{ Forget(id string) }); ok {
		f.Forget(id)
	}
}

// Watch hands on a process Recover listed without a report (see
// node.Config.Reporter), when the next Reporter wants to know.
func (r *Reporter) Watch(id string) {
	if w, ok := r.next.(interface{ Watch(id string) }); ok {
		w.Watch(id)
	}
}

// Describe implements prometheus.Collector.
func (r *Reporter) Describe(ch chan<- *prometheus.Desc) {
	ch <- r.reportsDesc
	ch <- r.errorsDesc
	for _, c := range r.collectors() {
		c.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (r *Reporter) Collect(ch chan<- prometheus.Metric) {
	for k, name := range kindNames {
		ch <- prometheus.MustNewConstMetric(r.reportsDesc, prometheus.CounterValue, float64(r.kinds[k].Load()), name)
	}
	if other := r.kinds[maxKind-1].Load(); other > 0 {
		ch <- prometheus.MustNewConstMetric(r.reportsDesc, prometheus.CounterValue, float64(other), "other")
	}
	ch <- prometheus.MustNewConstMetric(r.errorsDesc, prometheus.CounterValue, float64(r.errors.Load()))
	for _, c := range r.collectors() {
		c.Collect(ch)
	}
}

func (r *Reporter) collectors() []prometheus.Collector {
	return []prometheus.Collector{r.spawns, r.restarts, r.crashes, r.stops, r.stale, r.restartLimits,
		r.watchdogKills, r.limitKills, r.latency}
}
