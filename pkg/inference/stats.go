package inference

import (
	"math"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gyreml/gyre/pkg/model"
	inferencev1 "github.com/gyreml/gyre/pkg/pb/gyre/inference/v1"
	"github.com/gyreml/gyre/pkg/sketch"
)

// statsK is the KLL accuracy of the latency and prediction sketches.
const statsK = sketch.DefaultKLLK

// versionStats is one version's traffic in one role of a route, since the
// stats window was last reset: what the deployer's canary analysis reads.
type versionStats struct {
	role    string
	version int64

	mu       sync.Mutex
	requests int64
	errors   int64
	// latency is in milliseconds.
	latency *sketch.KLL
	// predictions are the predicted values (positive-class probability,
	// the top class's probability, or the regression output).
	predictions *sketch.KLL
	predSum     float64
	predCount   int64
}

func newVersionStats(role string, version int64) *versionStats {
	return &versionStats{role: role, version: version, latency: sketch.NewKLL(statsK), predictions: sketch.NewKLL(statsK)}
}

// observe records one request.
func (v *versionStats) observe(latencyMs float64, preds []model.Prediction, failed bool) {
	v.mu.Lock()
	v.requests++
	if failed {
		v.errors++
	}
	v.latency.Update(latencyMs)
	for i := range preds {
		p := preds[i].Value
		if math.IsNaN(p) || math.IsInf(p, 0) {
			continue
		}
		v.predictions.Update(p)
		v.predSum += p
		v.predCount++
	}
	v.mu.Unlock()
}

func (v *versionStats) snapshot() (*inferencev1.VersionStats, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	st := &inferencev1.VersionStats{Version: v.version, Role: v.role, Requests: v.requests, Errors: v.errors}
	if v.requests > 0 {
		st.ErrorRate = float64(v.errors) / float64(v.requests)
	}
	if v.latency.Count() > 0 {
		sorted := v.latency.Sorted()
		st.LatencyP50Ms, st.LatencyP99Ms = sorted.Quantile(0.5), sorted.Quantile(0.99)
	}
	if v.predCount > 0 {
		st.PredictionMean = v.predSum / float64(v.predCount)
	}
	raw, err := v.predictions.MarshalBinary()
	if err != nil {
		return nil, err
	}
	st.PredictionSketch = raw
	return st, nil
}

// metrics are the data plane's Prometheus series.
type metrics struct {
	duration *prometheus.HistogramVec
	requests *prometheus.CounterVec
	// logDropped counts prediction records not logged, by reason.
	logDropped *prometheus.CounterVec
	logged     prometheus.Counter
	// shadowDropped counts requests not mirrored to a shadow (queue full).
	shadowDropped *prometheus.CounterVec
}

// Reasons a prediction record is dropped.
const (
	dropBufferFull = "buffer_full"
	dropPublish    = "publish_failed"
)

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "gyre_inference_request_duration_seconds",
			Help: "Time to answer an inference request, by model, version, environment and HTTP status code.",
			// Sub-millisecond buckets: a tabular model answers in microseconds.
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"model", "version", "environment", "code"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gyre_inference_requests_total",
			Help: "Inference requests, by model, version, environment and HTTP status code (gRPC codes mapped to theirs).",
		}, []string{"model", "version", "environment", "code"}),
		logDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gyre_inference_log_dropped_total",
			Help: "Prediction records not logged: the buffer was full (buffer_full) or the broker refused or missed them (publish_failed).",
		}, []string{"reason"}),
		logged: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gyre_inference_logged_total",
			Help: "Prediction records published to gyre.inference.logged.",
		}),
		shadowDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gyre_inference_shadow_dropped_total",
			Help: "Requests not mirrored to the shadow version because its queue was full.",
		}, []string{"model", "environment"}),
	}
	for _, reason := range []string{dropBufferFull, dropPublish} {
		m.logDropped.WithLabelValues(reason)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.duration, m.requests, m.logDropped, m.logged, m.shadowDropped} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
