package monitor

import (
	"fmt"
	"math"
	"time"

	eventsv1 "github.com/gyreml/gyre/pkg/pb/gyre/events/v1"
	"github.com/gyreml/gyre/pkg/sketch"
)

// topKCapacity is the number of counters of a categorical feature's (and
// the predicted labels') top-k: exact counts up to this many categories, as
// in profiles.
const topKCapacity = 512

// windowKey names one window.
type windowKey struct {
	model       string
	version     int64
	environment string
	start       time.Time
}

// windowStart is the start of the window of length d that holds t; windows
// are aligned on the Unix epoch, so every process cuts them alike.
func windowStart(t time.Time, d time.Duration) time.Time {
	ns := t.UnixNano()
	off := ns % int64(d)
	if off < 0 {
		off += int64(d)
	}
	return time.Unix(0, ns-off).UTC()
}

// windowState is the sketch part of a window, decoded.
type windowState struct {
	requests, errors int64
	latency          *sketch.KLL
	values           *sketch.KLL
	labels           *sketch.TopK
	features         map[featureKey]*featureState
}

type featureKey struct{ name, kind string }

type featureState struct {
	count  int64
	kll    *sketch.KLL
	topk   *sketch.TopK
	loaded bool // present in the database (else inserted)
}

func decodeKLL(raw []byte) (*sketch.KLL, error) {
	s := sketch.NewKLL(sketch.DefaultKLLK)
	if len(raw) == 0 {
		return s, nil
	}
	if err := s.UnmarshalBinary(raw); err != nil {
		return nil, err
	}
	return s, nil
}

func decodeTopK(raw []byte) (*sketch.TopK, error) {
	t := sketch.NewTopK(topKCapacity)
	if len(raw) == 0 {
		return t, nil
	}
	if err := t.UnmarshalBinary(raw); err != nil {
		return nil, err
	}
	return t, nil
}

func newFeature(kind string) *featureState {
	if kind == kindNumeric {
		return &featureState{kll: sketch.NewKLL(sketch.DefaultKLLK)}
	}
	return &featureState{topk: sketch.NewTopK(topKCapacity)}
}

func decodeFeature(kind string, count int64, raw []byte) (*featureState, error) {
	f := &featureState{count: count, loaded: true}
	var err error
	if kind == kindNumeric {
		f.kll, err = decodeKLL(raw)
	} else {
		f.topk, err = decodeTopK(raw)
	}
	return f, err
}

func (f *featureState) encode() ([]byte, error) {
	if f.kll != nil {
		return f.kll.MarshalBinary()
	}
	return f.topk.MarshalBinary()
}

// add folds one record into the window: its request, latency, outputs and
// every input. A failed request has inputs and a latency but no outputs.
func (w *windowState) add(r *eventsv1.PredictionRecord) {
	w.requests++
	if lat := r.GetLatencyMs(); lat >= 0 && !math.IsNaN(lat) {
		w.latency.Update(lat)
	}
	if r.GetError() != "" {
		w.errors++
	} else {
		// The value means something for regression and binary models; a
		// multiclass model's distribution is its labels.
		if len(r.GetProbabilities()) <= 2 {
			w.values.Update(r.GetValue())
		}
		if r.GetLabel() != "" {
			w.labels.Add(r.GetLabel())
		}
	}
	for name, x := range r.GetNumeric() {
		f := w.feature(name, kindNumeric)
		f.count++
		f.kll.Update(x)
	}
	for name, v := range r.GetCategorical() {
		f := w.feature(name, kindCategorical)
		f.count++
		f.topk.Add(v)
	}
}

func (w *windowState) feature(name, kind string) *featureState {
	k := featureKey{name, kind}
	f, ok := w.features[k]
	if !ok {
		f = newFeature(kind)
		w.features[k] = f
	}
	return f
}

func encodeSketch(m interface{ MarshalBinary() ([]byte, error) }) ([]byte, error) {
	raw, err := m.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("encode sketch: %w", err)
	}
	return raw, nil
}
