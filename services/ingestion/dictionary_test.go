package ingestion

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
)

// TestDictionaryFindsWhatAMapFinds adds and looks up values of every shape
// the dictionary treats apart (short numbers, few values, anything), with
// near misses between them: it must answer as a map of strings does.
func TestDictionaryFindsWhatAMapFinds(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	shapes := []func() string{
		func() string { return strconv.Itoa(rng.IntN(200)) },
		func() string { return fmt.Sprintf("%03d", rng.IntN(200)) }, // "042" is not "42"
		func() string { return fmt.Sprintf("%.*f", rng.IntN(4), rng.NormFloat64()*10) },
		func() string {
			return []string{"-0", "0", "0.", ".5", "0.5", "0.50", "-", ".", "", "-.5", "5.", "05."}[rng.IntN(12)]
		},
		func() string { return strconv.FormatInt(rng.Int64N(1e17), 10) }, // past 15 digits: a string
		func() string { return fmt.Sprintf("1234567890.%05d", rng.IntN(100)) },
		func() string { return []string{"a", "b", "true", "false", "x1", "1x", "1e5", "+1"}[rng.IntN(8)] },
	}
	for n, dictSize := range []int{3, 6, 7, 200, 5000} {
		d, want := newDictionary(), map[string]int32{}
		for range 20 * dictSize {
			v := shapes[rng.IntN(len(shapes))]()
			k, found := d.find(v)
			wk, wfound := want[v]
			if found != wfound || found && k != wk {
				t.Fatalf("case %d: find(%q) = %d, %v; want %d, %v", n, v, k, found, wk, wfound)
			}
			if !found && len(want) < dictSize {
				kept, k := d.add(v)
				if kept != v || d.values[k] != v {
					t.Fatalf("add(%q) kept %q", v, kept)
				}
				want[v] = k
			}
		}
	}
}

// TestShortNumberSlots: every string of 1 to 4 digits has its own slot,
// and nothing else has one.
func TestShortNumberSlots(t *testing.T) {
	seen := make([]string, shortNumberSlots)
	for n := 1; n <= 4; n++ {
		for x := range int(math.Pow10(n)) {
			v := fmt.Sprintf("%0*d", n, x)
			slot := shortNumberSlot(v)
			if slot < 0 || slot >= shortNumberSlots || seen[slot] != "" {
				t.Fatalf("%q has slot %d (taken by %q)", v, slot, seen[max(slot, 0)])
			}
			seen[slot] = v
		}
	}
	for _, v := range []string{"", "12345", "-1", "+1", "1.0", "1a", " 1", "١"} {
		if slot := shortNumberSlot(v); slot != -1 {
			t.Errorf("%q has slot %d", v, slot)
		}
	}
}
