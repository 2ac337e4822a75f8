package monitor

import (
	"context"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gyreml/gyre/pkg/drift"
	"github.com/gyreml/gyre/pkg/paging"
	monitorv1 "github.com/gyreml/gyre/pkg/pb/gyre/monitor/v1"
	"github.com/gyreml/gyre/pkg/sketch"
)

// Defaults and limits of the series queries.
const (
	defaultSeriesSince  = 24 * time.Hour
	defaultCompareSince = time.Hour
	maxSeriesPoints     = 50_000
)

func sinceOr(ts *timestamppb.Timestamp, def time.Duration) time.Time {
	if ts == nil {
		return time.Now().Add(-def)
	}
	return ts.AsTime()
}

func (s *Service) ListAlerts(ctx context.Context, req *monitorv1.ListAlertsRequest) (*monitorv1.ListAlertsResponse, error) {
	after, err := paging.Key(req.GetPageToken())
	if err != nil {
		return nil, err
	}
	state := ""
	switch req.GetState() {
	case monitorv1.AlertState_ALERT_STATE_FIRING:
		state = "firing"
	case monitorv1.AlertState_ALERT_STATE_RESOLVED:
		state = "resolved"
	}
	limit := paging.Size(req.GetPageSize())
	rows, err := s.pool.Query(ctx, `SELECT `+alertColumns+` FROM alerts a LEFT JOIN rule_states r ON r.model = a.model AND r.rule = a.rule
		WHERE ($1 = '' OR a.id < $1::uuid) AND ($2 = '' OR a.model = $2) AND ($3 = '' OR a.state = $3)
		ORDER BY a.id DESC LIMIT $4`, after, req.GetModel(), state, limit+1)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	resp := &monitorv1.ListAlertsResponse{}
	for rows.Next() {
		a, err := scanAlert(rows)
		if err != nil {
			return nil, err
		}
		if a.GetState() == monitorv1.AlertState_ALERT_STATE_RESOLVED {
			a.CleanWindows = 0 // the rule's count has moved on since
		}
		if len(resp.Alerts) == limit {
			resp.NextPageToken = paging.Token(resp.Alerts[limit-1].GetId())
			break
		}
		resp.Alerts = append(resp.Alerts, a)
	}
	return resp, rows.Err()
}

func (s *Service) GetDriftSeries(ctx context.Context, req *monitorv1.GetDriftSeriesRequest) (*monitorv1.GetDriftSeriesResponse, error) {
	rows, err := s.pool.Query(ctx, `SELECT w.version, w.environment, d.feature, d.method, d.score, d.p_value, w.start_time, w.end_time,
			d.samples, d.reference, d.alerting, d.threshold
		FROM drift_scores d JOIN windows w ON w.id = d.window_id
		WHERE w.model = $1 AND w.start_time >= $2 AND ($3::bigint = 0 OR w.version = $3::bigint) AND ($4 = '' OR d.feature = $4)
			AND ($5 = '' OR d.method = $5) AND ($6 = '' OR w.environment = $6)
		ORDER BY w.start_time, w.version, w.environment, d.feature, d.method LIMIT $7`,
		req.GetModel(), sinceOr(req.GetSince(), defaultSeriesSince), req.GetVersion(), req.GetFeature(), req.GetMethod(), req.GetEnvironment(), maxSeriesPoints+1)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	resp := &monitorv1.GetDriftSeriesResponse{}
	for rows.Next() {
		p := &monitorv1.DriftPoint{}
		var start, end time.Time
		if err := rows.Scan(&p.Version, &p.Environment, &p.Feature, &p.Method, &p.Score, &p.PValue, &start, &end, &p.Samples, &p.Reference,
			&p.Alerting, &p.Threshold); err != nil {
			return nil, err
		}
		if len(resp.Points) == maxSeriesPoints {
			resp.Truncated = true
			break
		}
		p.WindowStart, p.WindowEnd = timestamppb.New(start), timestamppb.New(end)
		resp.Points = append(resp.Points, p)
	}
	return resp, rows.Err()
}

func (s *Service) GetPerformanceSeries(ctx context.Context, req *monitorv1.GetPerformanceSeriesRequest) (*monitorv1.GetPerformanceSeriesResponse, error) {
	rows, err := s.pool.Query(ctx, `SELECT w.version, w.environment, m.metric, m.value, m.samples, w.start_time, w.end_time
		FROM performance_scores m JOIN windows w ON w.id = m.window_id
		WHERE w.model = $1 AND w.start_time >= $2 AND ($3::bigint = 0 OR w.version = $3::bigint) AND ($4 = '' OR m.metric = $4) AND ($5 = '' OR w.environment = $5)
		ORDER BY w.start_time, w.version, w.environment, m.metric LIMIT $6`,
		req.GetModel(), sinceOr(req.GetSince(), defaultSeriesSince), req.GetVersion(), req.GetMetric(), req.GetEnvironment(), maxSeriesPoints+1)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	resp := &monitorv1.GetPerformanceSeriesResponse{}
	for rows.Next() {
		p := &monitorv1.PerformancePoint{}
		var start, end time.Time
		if err := rows.Scan(&p.Version, &p.Environment, &p.Metric, &p.Value, &p.Samples, &start, &end); err != nil {
			return nil, err
		}
		if len(resp.Points) == maxSeriesPoints {
			resp.Truncated = true
			break
		}
		p.WindowStart, p.WindowEnd = timestamppb.New(start), timestamppb.New(end)
		resp.Points = append(resp.Points, p)
	}
	return resp, rows.Err()
}

// traffic accumulates one version's windows.
type traffic struct {
	out     *monitorv1.VersionTraffic
	latency *sketch.KLL
	values  *sketch.KLL
	labels  *sketch.TopK
}

// CompareVersions sums each version's windows in the environment that end
// after since (the open ones included), merging their sketches, and
// measures both on their predictions with feedback since then.
func (s *Service) CompareVersions(ctx context.Context, req *monitorv1.CompareVersionsRequest) (*monitorv1.CompareVersionsResponse, error) {
	env := req.GetEnvironment()
	if env == "" {
		env = "production"
	}
	since := sinceOr(req.GetSince(), defaultCompareSince)
	sides := map[int64]*traffic{}
	for _, v := range []int64{req.GetBaselineVersion(), req.GetCandidateVersion()} {
		sides[v] = &traffic{out: &monitorv1.VersionTraffic{Version: v, Metrics: map[string]float64{}}, latency: sketch.NewKLL(sketch.DefaultKLLK),
			values: sketch.NewKLL(sketch.DefaultKLLK), labels: sketch.NewTopK(topKCapacity)}
	}
	rows, _ := s.pool.Query(ctx, `SELECT version, requests, errors, latency, prediction_values, prediction_labels FROM windows
		WHERE model = $1 AND environment = $2 AND version = ANY($3) AND end_time > $4`,
		req.GetModel(), env, []int64{req.GetBaselineVersion(), req.GetCandidateVersion()}, since)
	var version, requests, errs int64
	var lat, vals, labs []byte
	_, err := pgx.ForEachRow(rows, []any{&version, &requests, &errs, &lat, &vals, &labs}, func() error {
		t := sides[version]
		t.out.Requests += requests
		t.out.Errors += errs
		t.out.Windows++
		if err := mergeKLL(t.latency, lat); err != nil {
			return err
		}
		if err := mergeKLL(t.values, vals); err != nil {
			return err
		}
		l, err := decodeTopK(labs)
		if err != nil {
			return err
		}
		t.labels.Merge(l)
		return nil
	})
	if err != nil {
		return nil, err
	}
	for v, t := range sides {
		o := t.out
		if o.Requests > 0 {
			o.ErrorRate = float64(o.Errors) / float64(o.Requests)
		}
		if t.latency.Count() > 0 {
			o.LatencyP50Ms, o.LatencyP99Ms = t.latency.Quantile(0.5), t.latency.Quantile(0.99)
		}
		if t.values.Count() > 0 {
			o.PredictionMean = meanOf(t.values)
		}
		info, err := s.version(ctx, req.GetModel(), v)
		if err != nil {
			return nil, err
		}
		lr, err := labelledRows(ctx, s.pool, `p.model = $1 AND p.version = $2 AND p.environment = $3 AND p.time >= $4`, req.GetModel(), v, env, since)
		if err != nil {
			return nil, err
		}
		n, m := liveMetrics(lr, info.sensitive, info.minGroupSize)
		o.Labelled, o.Metrics = n, m
	}
	base, cand := sides[req.GetBaselineVersion()], sides[req.GetCandidateVersion()]
	resp := &monitorv1.CompareVersionsResponse{Baseline: base.out, Candidate: cand.out, Since: timestamppb.New(since)}
	if base.values.Count() > 0 && cand.values.Count() > 0 {
		psi := drift.SketchPSI(base.values, cand.values, drift.SketchEdges(base.values, drift.DefaultPSIBins))
		ks := drift.SketchKS(base.values, cand.values)
		resp.PredictionPsi, resp.PredictionKs, resp.PredictionKsPValue = finitePtr(psi), finitePtr(ks.D), finitePtr(ks.PValue)
	}
	if base.labels.Count() > 0 && cand.labels.Count() > 0 {
		for _, sc := range categoricalScores(base.labels, cand.labels) {
			if sc.method == "js" {
				resp.LabelJs = finitePtr(sc.score)
			}
		}
	}
	return resp, nil
}

func finitePtr(x float64) *float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return nil
	}
	return &x
}

// meanOf is the mean of a sketch's values, from its retained values.
func meanOf(k *sketch.KLL) float64 {
	xs, cum := k.Sorted().Values()
	var sum float64
	var prev int64
	for i, x := range xs {
		sum += x * float64(cum[i]-prev)
		prev = cum[i]
	}
	return sum / float64(k.Count())
}

func (s *Service) ListWindows(ctx context.Context, req *monitorv1.ListWindowsRequest) (*monitorv1.ListWindowsResponse, error) {
	after, ok, err := paging.IntKey(req.GetPageToken())
	if err != nil {
		return nil, err
	}
	if !ok {
		after = math.MaxInt64
	}
	limit := paging.Size(req.GetPageSize())
	rows, err := s.pool.Query(ctx, `SELECT `+windowColumns+`,
			(SELECT count(*) FROM predictions p JOIN feedback f ON f.prediction_id = p.prediction_id AND f.row = p.row
			 WHERE p.model = w.model AND p.version = w.version AND p.environment = w.environment AND p.window_start = w.start_time)
		FROM windows w WHERE model = $1 AND id < $2 AND ($3::bigint = 0 OR version = $3::bigint) AND ($4 = '' OR environment = $4)
		ORDER BY id DESC LIMIT $5`, req.GetModel(), after, req.GetVersion(), req.GetEnvironment(), limit+1)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	resp := &monitorv1.ListWindowsResponse{}
	var lastID int64
	for rows.Next() {
		w := &window{}
		var labelled int64
		if err := rows.Scan(&w.id, &w.key.model, &w.key.version, &w.key.environment, &w.key.start, &w.end, &w.requests, &w.errors, &w.late,
			&w.latency, &w.values, &w.labels, &w.closed, &labelled); err != nil {
			return nil, err
		}
		if len(resp.Windows) == limit {
			resp.NextPageToken = paging.IntToken(lastID)
			break
		}
		lastID = w.id
		out := &monitorv1.Window{Model: w.key.model, Version: w.key.version, Environment: w.key.environment, Start: timestamppb.New(w.key.start),
			End: timestamppb.New(w.end), Requests: w.requests, Errors: w.errors, Labelled: labelled, LateRecords: w.late, Closed: w.closed}
		if w.requests > 0 {
			out.ErrorRate = float64(w.errors) / float64(w.requests)
		}
		if p := quantile(w.latency, 0.5); !math.IsNaN(p) {
			out.LatencyP50Ms, out.LatencyP99Ms = p, quantile(w.latency, 0.99)
		}
		resp.Windows = append(resp.Windows, out)
	}
	return resp, rows.Err()
}
