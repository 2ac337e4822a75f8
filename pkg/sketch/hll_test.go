package sketch

import (
	"encoding/json"
	"math"
	"strconv"
	"testing"
)

func TestHLLEstimateWithinTwoPercent(t *testing.T) {
	h := NewHLL()
	next := 0
	for _, n := range []int{0, 1, 10, 100, 1000, 10_000, 100_000, 1_000_000} {
		for ; next < n; next++ {
			h.AddString("user-" + strconv.Itoa(next))
		}
		got := h.Estimate()
		if n == 0 {
			if got != 0 {
				t.Errorf("empty: estimate %d, want 0", got)
			}
			continue
		}
		rel := math.Abs(float64(got)-float64(n)) / float64(n)
		t.Logf("n=%d estimate=%d error=%.3f%%", n, got, 100*rel)
		if rel > 0.02 {
			t.Errorf("n=%d: estimate %d is %.2f%% off, want within 2%%", n, got, 100*rel)
		}
	}
}

func TestHLLFloatsAndDuplicates(t *testing.T) {
	h := NewHLL()
	const n = 1_000_000
	for i := range n {
		h.AddFloat(float64(i) * 0.001)
		h.AddFloat(float64(i) * 0.001) // duplicates change nothing
	}
	if rel := math.Abs(float64(h.Estimate())-n) / n; rel > 0.02 {
		t.Errorf("estimate %d is %.2f%% off %d", h.Estimate(), 100*rel, n)
	}
	z := NewHLL()
	z.AddFloat(0)
	z.AddFloat(math.Copysign(0, -1))
	if got := z.Estimate(); got != 1 {
		t.Errorf("+0 and -0 counted as %d values, want 1", got)
	}
}

func TestHLLMergeIsUnion(t *testing.T) {
	a, b, all := NewHLL(), NewHLL(), NewHLL()
	for i := range 300_000 {
		s := strconv.Itoa(i)
		if i < 200_000 {
			a.AddString(s)
		}
		if i >= 100_000 {
			b.AddString(s)
		}
		all.AddString(s)
	}
	a.Merge(b)
	if *a != *all {
		t.Fatal("merge of overlapping halves differs from the sketch of the union")
	}
}

func TestHLLRoundTrip(t *testing.T) {
	for _, n := range []int{0, 5, 100_000} {
		h := NewHLL()
		for i := range n {
			h.AddString(strconv.Itoa(i))
		}
		data, err := h.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("n=%d: %d bytes", n, len(data))
		var got HLL
		if err := got.UnmarshalBinary(data); err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		if got != *h {
			t.Errorf("n=%d: binary round trip changed the registers", n)
		}
		js, err := json.Marshal(h)
		if err != nil {
			t.Fatal(err)
		}
		var fromJSON HLL
		if err := json.Unmarshal(js, &fromJSON); err != nil {
			t.Fatal(err)
		}
		if fromJSON != *h {
			t.Errorf("n=%d: JSON round trip changed the registers", n)
		}
	}
}

func TestHLLRejectsCorruptInput(t *testing.T) {
	h := NewHLL()
	h.AddString("x")
	good, _ := h.MarshalBinary()
	for name, data := range map[string][]byte{
		"empty":     nil,
		"wrong tag": append([]byte{tagKLL}, good[1:]...),
		"truncated": good[:len(good)-1],
		"trailing":  append(append([]byte{}, good...), 0),
		"precision": append([]byte{tagHLL, formatVersion, 12}, good[3:]...),
	} {
		var d HLL
		if err := d.UnmarshalBinary(data); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
}
