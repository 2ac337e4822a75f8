package gbdt

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gyreml/gyre/pkg/model"
)

// TestGrowPartitionsRows grows one tree on random gradients, over enough rows
// for several partition blocks and for gathered nodes, and checks that each
// leaf holds exactly the rows the tree routes to it, with their gradient sums.
func TestGrowPartitionsRows(t *testing.T) {
	const n = 50_000
	d := synthBinary(n, 6, 0.1, 1)
	levels := []string{"a", "b", "c", "d", "e", "f", "g"}
	cat := Column{Name: "c", Kind: model.Categorical, S: make([]string, n)}
	rng := rand.New(rand.NewPCG(1, 1))
	for i := range n {
		cat.S[i] = levels[rng.IntN(len(levels))]
	}
	d.Features = append(d.Features, cat)
	p := DefaultParams()
	p.MaxDepth, p.MinChildWeight = 7, 0
	fb := make([]*featureBins, len(d.Features))
	for j := range fb {
		fb[j] = newFeatureBins(&d.Features[j], p.MaxBins, rng)
	}
	m := binData(d, fb, true, p.threads())
	g := newGrower(p, m, fb)
	for j := range g.allowed {
		g.allowed[j] = true
	}
	g.gh = make([]gpair, n)
	for i := range g.gh {
		// Gradients that depend on the features, so the tree splits on them.
		x := d.Features[0].F[i]
		if math.IsNaN(x) {
			x = 3
		}
		g.gh[i] = gpair{x + rng.NormFloat64() + map[string]float64{"a": 2, "d": -2}[cat.S[i]], rng.Float64() + 0.1}
	}
	var sample []uint32
	for i := range n {
		if rng.Float64() < 0.9 {
			sample = append(sample, uint32(i))
		}
	}
	copy(g.rows, sample)
	nodes := g.grow(len(sample))

	leaves, catSplits, seen := 0, 0, make(map[uint32]bool, len(sample))
	for id, nd := range nodes {
		if !nd.leaf() {
			if nd.feature == len(fb)-1 {
				catSplits++
			}
			continue
		}
		leaves++
		var sum gpair
		for _, r := range g.rows[nd.begin:nd.end] {
			if seen[r] {
				t.Fatalf("row %d in two leaves", r)
			}
			seen[r] = true
			sum = sum.add(g.gh[r])
			if got := leafOf(nodes, m.row(int(r))); got != id {
				t.Fatalf("row %d is held by leaf %d but routed to node %d", r, id, got)
			}
		}
		if math.Abs(sum.h-nd.sum.h) > 1e-6*math.Max(1, sum.h) || math.Abs(sum.g-nd.sum.g) > 1e-6*math.Max(1, math.Abs(sum.g)) {
			t.Errorf("leaf %d: its rows sum to %+v, the tree says %+v", id, sum, nd.sum)
		}
	}
	if len(seen) != len(sample) || leaves < 32 || catSplits == 0 {
		t.Errorf("%d leaves hold %d rows, %d splits on the category; want the %d sampled rows in at least 32 leaves, some category splits",
			leaves, len(seen), catSplits, len(sample))
	}
}

func leafOf(nodes []tnode, row []uint8) int {
	i := 0
	for !nodes[i].leaf() {
		if nodes[i].route[row[nodes[i].feature]] {
			i = nodes[i].left
		} else {
			i = nodes[i].right
		}
	}
	return i
}
