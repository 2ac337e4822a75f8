package inference

import (
	"fmt"
	"slices"
	"time"

	"github.com/gyreml/gyre/pkg/apierr"

	"github.com/gyreml/gyre/pkg/model"
)

// shadowJob is a copy of an answered request for the route's shadow.
type shadowJob struct {
	rt *route
	id string
	// rows are in the order of inputs, the answering version's.
	inputs []model.Input
	rows   []model.Row
}

// mirror queues rows for the shadow version, or drops them (counted) when
// the queue is full: the answer has gone, and never waits for a shadow.
func (s *Server) mirror(rt *route, id string, inputs []model.Input, rows []model.Row) {
	s.shadowMu.RLock()
	defer s.shadowMu.RUnlock()
	if s.shadowClosed {
		return
	}
	select {
	case s.shadows <- shadowJob{rt: rt, id: id, inputs: inputs, rows: rows}:
	default:
		s.metrics.shadowDropped.WithLabelValues(rt.model, rt.env).Inc()
	}
}

// shadowWorker scores queued copies with the shadow version; its answers go
// to its stats and the prediction log (role shadow), nowhere else.
func (s *Server) shadowWorker() {
	for job := range s.shadows {
		t := job.rt.shadow
		start := time.Now()
		rows, err := remap(job.inputs, t.m.inputs, job.rows)
		var preds []model.Prediction
		if err == nil {
			preds, err = t.predict(rows)
		}
		elapsed := time.Since(start)
		ms := float64(elapsed.Nanoseconds()) / 1e6
		t.stats.observe(ms, preds, err != nil)
		if s.logger == nil {
			continue
		}
		e := &logEntry{id: job.id, model: job.rt.model, version: t.version, env: job.rt.env, role: t.role, time: start,
			latencyMs: ms, inputs: t.m.inputs, rows: rows, preds: preds}
		if err != nil {
			e.rows, e.preds, e.err = nil, nil, publicMessage(err)
		}
		s.logger.enqueue(e)
	}
}

// remap reorders rows read for one version's inputs into another's, by
// name; a shadow whose inputs the request lacks fails (counted in its stats).
func remap(from, to []model.Input, rows []model.Row) ([]model.Row, error) {
	if slices.Equal(from, to) {
		return rows, nil
	}
	src := make([]int, len(to))
	for j, in := range to {
		src[j] = slices.IndexFunc(from, func(f model.Input) bool { return f.Name == in.Name })
		if src[j] < 0 || from[src[j]].Kind != in.Kind {
			return nil, apierr.Invalid(fmt.Sprintf("input %q: the shadow version reads it (%s), the request did not have it", in.Name, in.Kind))
		}
	}
	values := make([]model.Value, len(rows)*len(to))
	out := make([]model.Row, len(rows))
	for r, row := range rows {
		out[r] = values[r*len(to) : (r+1)*len(to) : (r+1)*len(to)]
		for j, i := range src {
			out[r][j] = row[i]
		}
	}
	return out, nil
}
