package metrics

import (
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewRegistry gathers a node's metrics: the counters of rep, the state st
// reads at scrape time, and the Go runtime's and this process's own
// (go_*, process_*: corrald's CPU and memory). rep may be nil.
func NewRegistry(rep *Reporter, st State) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newStateCollector(st))
	if rep != nil {
		reg.MustRegister(rep)
	}
	return reg
}

// maxScrapes bounds the scrapes served at once: beyond it a scrape gets
// 503 at once rather than piling up work.
const maxScrapes = 4

// Handler serves reg in the Prometheus exposition formats (text, or
// what the scraper negotiates), logging collection errors to logger.
func Handler(reg *prometheus.Registry, logger *slog.Logger) http.Handler {
	if logger == nil {
		logger = slog.Default()
	}
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:            slogPrinter{logger},
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: maxScrapes,
	})
}

// slogPrinter is promhttp's Logger on slog.
type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Println(v ...any) { p.log.Warn("metrics", "err", v) }
