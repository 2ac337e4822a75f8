package sketch

import (
	"math/rand/v2"
	"strconv"
	"testing"
	"time"
)

func benchFloats() []float64 {
	rng := rand.New(rand.NewPCG(1, 1))
	xs := make([]float64, 1<<16)
	for i := range xs {
		xs[i] = rng.NormFloat64()
	}
	return xs
}

func benchStrings(distinct int) []string {
	rng := rand.New(rand.NewPCG(2, 2))
	ss := make([]string, 1<<16)
	for i := range ss {
		ss[i] = "id-" + strconv.Itoa(rng.IntN(distinct))
	}
	return ss
}

func BenchmarkKLLUpdate(b *testing.B) {
	xs := benchFloats()
	s := NewKLL(DefaultKLLK)
	i := 0
	for b.Loop() {
		s.Update(xs[i&(len(xs)-1)])
		i++
	}
}

func BenchmarkHLLAddString(b *testing.B) {
	ss := benchStrings(1_000_000)
	h := NewHLL()
	i := 0
	for b.Loop() {
		h.AddString(ss[i&(len(ss)-1)])
		i++
	}
}

func BenchmarkMomentsAdd(b *testing.B) {
	xs := benchFloats()
	var m Moments
	i := 0
	for b.Loop() {
		m.Add(xs[i&(len(xs)-1)])
		i++
	}
}

func BenchmarkTopKAdd(b *testing.B) {
	for _, distinct := range []int{40, 1_000_000} {
		b.Run("distinct="+strconv.Itoa(distinct), func(b *testing.B) {
			ss := benchStrings(distinct)
			t := NewTopK(256)
			i := 0
			for b.Loop() {
				t.Add(ss[i&(len(ss)-1)])
				i++
			}
		})
	}
}

// BenchmarkKLLUpdateAll adds values 512 at a time with UpdateAll and one
// at a time with Update, to two sketches in the same run: speedup is how
// many times faster UpdateAll is a value.
func BenchmarkKLLUpdateAll(b *testing.B) {
	xs := benchFloats()
	all, one := NewKLL(DefaultKLLK), NewKLL(DefaultKLLK)
	var batched, single time.Duration
	i := 0
	for b.Loop() {
		batch := xs[i : i+512]
		start := time.Now()
		all.UpdateAll(batch)
		batched += time.Since(start)

		start = time.Now()
		for _, x := range batch {
			one.Update(x)
		}
		single += time.Since(start)
		i = (i + 512) & (len(xs) - 1)
	}
	values := float64(b.N * 512)
	b.ReportMetric(float64(batched.Nanoseconds())/values, "ns/value")
	b.ReportMetric(float64(single.Nanoseconds())/values, "Update-ns/value")
	b.ReportMetric(single.Seconds()/batched.Seconds(), "speedup")
	b.ReportMetric(0, "ns/op")
}
