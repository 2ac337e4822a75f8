package monitor

import "github.com/prometheus/client_golang/prometheus"

// metrics are the monitor's Prometheus series (deploy/grafana/gyre-monitor.json
// charts them). Drift, live metrics and latency are set when a window of the
// alert environment closes.
type metrics struct {
	drift       *prometheus.GaugeVec
	live        *prometheus.GaugeVec
	latencyP99  *prometheus.GaugeVec
	predictions *prometheus.CounterVec
	firing      *prometheus.GaugeVec
	deliveries  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		drift: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gyre_monitor_drift_score",
			Help: "Drift score of a feature in the last closed window, by method (psi, ks, wasserstein, chi2, js).",
		}, []string{"model", "version", "feature", "method"}),
		live: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gyre_monitor_live_metric",
			Help: "Live performance of the last measured window (accuracy, auc, f1, rmse, error_rate, fairness.* ...).",
		}, []string{"model", "version", "metric"}),
		latencyP99: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gyre_monitor_latency_p99_ms",
			Help: "99th percentile of the prediction latency in the last closed window, in milliseconds.",
		}, []string{"model", "version", "environment"}),
		predictions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gyre_monitor_predictions_total",
			Help: "Logged predictions folded into windows.",
		}, []string{"model", "version", "environment"}),
		firing: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gyre_monitor_alerts_firing",
			Help: "Alerts firing now, per model.",
		}, []string{"model"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gyre_monitor_alert_deliveries_total",
			Help: "Webhook delivery attempts by result: delivered, retried, failed.",
		}, []string{"result"}),
	}
	for _, c := range []prometheus.Collector{m.drift, m.live, m.latencyP99, m.predictions, m.firing, m.deliveries} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
