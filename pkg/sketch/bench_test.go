package sketch

import (
	"math/rand/v2"
	"strconv"
	"testing"
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

func BenchmarkKLLUpdateAll(b *testing.B) {
	xs := benchFloats()
	s := NewKLL(DefaultKLLK)
	i := 0
	for b.Loop() {
		s.UpdateAll(xs[i : i+512])
		i = (i + 512) & (len(xs) - 1)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/512, "ns/value")
}
