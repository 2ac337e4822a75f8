package sketch

import (
	"encoding/json"
	"fmt"
	"math"
)

// Moments keeps count, mean, the sum of squared deviations (M2), min and max
// with Welford's update, and merges with Chan, Golub and LeVeque's parallel
// formula: exact up to floating-point rounding, in any split or order.
// NaN and ±Inf are not counted (one would make the mean meaningless).
type Moments struct {
	n              int64
	mean, m2       float64
	minVal, maxVal float64
}

// Add counts x.
func (m *Moments) Add(x float64) {
	if !m.counted(x) {
		return
	}
	d := x - m.mean
	m.mean += d / float64(m.n)
	m.m2 += d * (x - m.mean)
}

// counted reports whether x is finite (else it is not counted), and counts
// it in the count, minimum and maximum.
func (m *Moments) counted(x float64) bool {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return false
	}
	if m.n == 0 {
		m.minVal, m.maxVal = x, x
	} else if x < m.minVal {
		m.minVal = x
	} else if x > m.maxVal {
		m.maxVal = x
	}
	m.n++
	return true
}

// AddAll counts the values of xs, as Add of each would up to rounding:
// their own mean and squared deviations in two passes, merged in. That has
// no division per value, which Add's running mean needs. Where their sum
// overflows (values near the float64 limit), they are added one by one.
func (m *Moments) AddAll(xs []float64) {
	var o Moments
	sum := 0.0
	for _, x := range xs {
		if o.counted(x) {
			sum += x
		}
	}
	if o.n == 0 {
		return
	}
	if math.IsInf(sum, 0) {
		for _, x := range xs {
			m.Add(x)
		}
		return
	}
	o.mean = sum / float64(o.n)
	for _, x := range xs {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			d := x - o.mean
			o.m2 += d * d
		}
	}
	m.Merge(&o)
}

// AddN counts x n times: Merge of n copies of x, in one step.
func (m *Moments) AddN(x float64, n int64) {
	if n <= 0 || math.IsNaN(x) || math.IsInf(x, 0) {
		return
	}
	m.Merge(&Moments{n: n, mean: x, minVal: x, maxVal: x})
}

// Merge folds o into m.
func (m *Moments) Merge(o *Moments) {
	switch {
	case o.n == 0:
		return
	case m.n == 0:
		*m = *o
		return
	}
	n := m.n + o.n
	d := o.mean - m.mean
	m.mean += d * float64(o.n) / float64(n)
	m.m2 += o.m2 + d*d*float64(m.n)*float64(o.n)/float64(n)
	m.minVal = min(m.minVal, o.minVal)
	m.maxVal = max(m.maxVal, o.maxVal)
	m.n = n
}

// Count returns how many values were added.
func (m *Moments) Count() int64 { return m.n }

// Mean returns the arithmetic mean (NaN when empty).
func (m *Moments) Mean() float64 {
	if m.n == 0 {
		return math.NaN()
	}
	return m.mean
}

// Variance returns the population variance, M2/n (NaN when empty).
func (m *Moments) Variance() float64 {
	if m.n == 0 {
		return math.NaN()
	}
	return m.m2 / float64(m.n)
}

// SampleVariance returns the unbiased sample variance, M2/(n-1) (NaN below
// two values).
func (m *Moments) SampleVariance() float64 {
	if m.n < 2 {
		return math.NaN()
	}
	return m.m2 / float64(m.n-1)
}

// Min returns the smallest value (NaN when empty).
func (m *Moments) Min() float64 {
	if m.n == 0 {
		return math.NaN()
	}
	return m.minVal
}

// Max returns the largest value (NaN when empty).
func (m *Moments) Max() float64 {
	if m.n == 0 {
		return math.NaN()
	}
	return m.maxVal
}

// Clone returns an independent copy.
func (m *Moments) Clone() *Moments {
	c := *m
	return &c
}

// MarshalBinary encodes the state.
func (m *Moments) MarshalBinary() ([]byte, error) {
	w := newWriter(tagMoments)
	w.uvarint(uint64(m.n))
	w.float(m.mean)
	w.float(m.m2)
	w.float(m.minVal)
	w.float(m.maxVal)
	return w.buf, nil
}

// UnmarshalBinary decodes what MarshalBinary wrote.
func (m *Moments) UnmarshalBinary(data []byte) error {
	r, err := newReader(data, tagMoments, "moments")
	if err != nil {
		return err
	}
	d := Moments{n: int64(r.uvarint()), mean: r.float(), m2: r.float(), minVal: r.float(), maxVal: r.float()}
	if err := r.done("moments"); err != nil {
		return err
	}
	if d.n < 0 {
		return fmt.Errorf("decode moments: negative count")
	}
	*m = d
	return nil
}

// momentsJSON is the readable JSON form; Go writes float64 in the shortest
// form that parses back to the same bits, so the round trip is exact.
type momentsJSON struct {
	N    int64   `json:"n"`
	Mean float64 `json:"mean"`
	M2   float64 `json:"m2"`
	Min  float64 `json:"min"`
	Max  float64 `json:"max"`
}

// MarshalJSON writes {"n","mean","m2","min","max"}.
func (m *Moments) MarshalJSON() ([]byte, error) {
	return json.Marshal(momentsJSON{N: m.n, Mean: m.mean, M2: m.m2, Min: m.minVal, Max: m.maxVal})
}

// UnmarshalJSON reads what MarshalJSON wrote.
func (m *Moments) UnmarshalJSON(js []byte) error {
	var j momentsJSON
	if err := json.Unmarshal(js, &j); err != nil {
		return fmt.Errorf("decode moments: %w", err)
	}
	if j.N < 0 || j.M2 < 0 {
		return fmt.Errorf("decode moments: negative count or M2")
	}
	*m = Moments{n: j.N, mean: j.Mean, m2: j.M2, minVal: j.Min, maxVal: j.Max}
	return nil
}
