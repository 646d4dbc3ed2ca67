package server

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/rerankloop/rerank/host/clicklog"
)

// Metrics are the host's Prometheus series. Create them before opening the
// click log so its write hook can feed them (see ObserveLogWrite).
type Metrics struct {
	reg       *prometheus.Registry
	requests  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	stage     *prometheus.HistogramVec
	searches  *prometheus.CounterVec
	fallbacks *prometheus.CounterVec
	// cascadeFallbacks counts searches the cascade stage did not reorder.
	cascadeFallbacks *prometheus.CounterVec
	logWrites        *prometheus.HistogramVec
	logErrors        *prometheus.CounterVec
}

// Latency buckets from 100 µs (a BM25 query on a small index) to 10 s.
var buckets = prometheus.ExponentialBucketsRange(0.0001, 10, 16)

// NewMetrics registers the host's series, with Go and process collectors, on
// a fresh registry.
func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rerank_http_requests_total", Help: "HTTP requests by handler and status code.",
		}, []string{"handler", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "rerank_http_request_duration_seconds", Help: "HTTP request latency by handler.", Buckets: buckets,
		}, []string{"handler"}),
		stage: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "rerank_search_stage_duration_seconds",
			Help:    "Time per search stage: bm25 (first stage), rerank (the reranker call, failures included), cascade (the cascade model's call, failures included), log (handing the impression to the click log).",
			Buckets: buckets,
		}, []string{"stage"}),
		searches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rerank_searches_total", Help: "Searches answered, by whether the reranker ordered them.",
		}, []string{"reranked"}),
		fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rerank_rerank_fallbacks_total",
			Help: "Searches answered in BM25 order although a reranker is configured, by reason: unavailable, deadline, error, bad_response.",
		}, []string{"reason"}),
		cascadeFallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rerank_cascade_fallbacks_total",
			Help: "Searches the cascade model (rerank.cascade) did not reorder, answered in the previous stage's order, by reason: unavailable, overloaded, deadline, error, bad_response.",
		}, []string{"reason"}),
		logWrites: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "rerank_clicklog_write_duration_seconds", Help: "Click log writes, from the call to the synced commit, by kind (search, click).", Buckets: buckets,
		}, []string{"kind"}),
		logErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rerank_clicklog_write_errors_total", Help: "Click log writes that failed or were rejected, by kind.",
		}, []string{"kind"}),
	}
	m.reg.MustRegister(m.requests, m.latency, m.stage, m.searches, m.fallbacks, m.cascadeFallbacks, m.logWrites, m.logErrors,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// ObserveLogWrite is a clicklog.Options.OnWrite hook.
func (m *Metrics) ObserveLogWrite(s clicklog.WriteStat) {
	m.logWrites.WithLabelValues(s.Kind).Observe(s.Latency.Seconds())
	if s.Err != nil {
		m.logErrors.WithLabelValues(s.Kind).Inc()
	}
}

func (m *Metrics) observeStage(stage string, start time.Time) {
	m.stage.WithLabelValues(stage).Observe(time.Since(start).Seconds())
}

// restartCounter is implemented by rerankers that supervise a process
// (host/pluginclient.Client).
type restartCounter interface{ Restarts() int64 }

func (m *Metrics) watchRestarts(r restartCounter) {
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "rerank_plugin_restarts_total", Help: "Restarts of the reranker plugin process after a crash.",
	}, func() float64 { return float64(r.Restarts()) }))
}

func (m *Metrics) watchDocs(count func() (int, error)) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "rerank_index_documents", Help: "Documents in the search index.",
	}, func() float64 {
		n, _ := count()
		return float64(n)
	}))
}
