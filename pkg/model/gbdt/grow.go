package gbdt

import (
	"cmp"
	"slices"

	"github.com/gyreml/gyre/pkg/model"
)

// gpair is a row's gradient and hessian at its current margin, or a sum of them.
type gpair struct{ g, h float64 }

func (a gpair) add(b gpair) gpair { return gpair{a.g + b.g, a.h + b.h} }
func (a gpair) sub(b gpair) gpair { return gpair{a.g - b.g, a.h - b.h} }

// featHist is one feature's gradient sums per bin; bins fit a uint8, so
// indexing it with one needs no bounds check.
type featHist [256]gpair

// minGain is the least loss reduction a split must bring (xgboost's kRtEps).
const minGain = 1e-6

// split is the best way found to split one node.
type split struct {
	gain        float64
	feature     int
	bin         int       // numeric: value bins 1..bin go left
	cats        [4]uint64 // categorical: bit b set sends bin b left
	defaultLeft bool      // the missing bin goes left
	left, right gpair
}

// route is where each bin of the split feature goes: true is left.
func (s *split) route(kind model.Kind) *[256]bool {
	var r [256]bool
	r[missingBin] = s.defaultLeft
	for b := 1; b < 256; b++ {
		if kind == model.Categorical {
			r[b] = s.cats[b/64]&(1<<(b%64)) != 0
		} else {
			r[b] = b <= s.bin
		}
	}
	return &r
}

// tnode is a node of a tree being grown.
type tnode struct {
	feature     int // -1: leaf
	split       split
	route       *[256]bool
	left, right int
	sum         gpair
	weight      float64 // the leaf value, shrunk by the learning rate
	begin, end  int     // the node's rows in grower.rows
}

func (n *tnode) leaf() bool { return n.feature < 0 }

// grower grows one tree at a time on a binned matrix.
type grower struct {
	p       Params
	threads int
	m       *matrix
	fb      []*featureBins
	gh      []gpair // by row
	allowed []bool  // features this tree may split on
	bands   [][2]int
	pool    [][]featHist
	partial []featHist // per-chunk histograms, reduced in chunk order
	// rows holds the tree's rows, each node's a contiguous range; splitting a
	// node partitions its range stably, so rows stay ascending within a node.
	rows    []uint32
	scratch []uint32
	// A node's rows are scattered through the matrix, and reading them in
	// place makes a histogram wait on memory at every row; they are
	// gathered here first (bins and gradients), then read in order.
	packed   []uint64
	packedGH []gpair
}

func newGrower(p Params, m *matrix, fb []*featureBins) *grower {
	g := &grower{p: p, threads: p.threads(), m: m, fb: fb, allowed: make([]bool, m.nf),
		rows: make([]uint32, m.n), scratch: make([]uint32, m.n),
		packed: make([]uint64, len(m.words)), packedGH: make([]gpair, m.n)}
	// A histogram task reads each of its rows once and updates a band of
	// features: wide enough to spread the row's cost, two at least so two
	// threads share even the root.
	nb := max(min(2, m.nf), (m.nf+bandWidth-1)/bandWidth)
	for i := range nb {
		g.bands = append(g.bands, [2]int{i * m.nf / nb, (i + 1) * m.nf / nb})
	}
	return g
}

func (g *grower) getHist() []featHist {
	if n := len(g.pool); n > 0 {
		h := g.pool[n-1]
		g.pool = g.pool[:n-1]
		return h
	}
	return make([]featHist, g.m.nf)
}

func (g *grower) putHist(h []featHist) { g.pool = append(g.pool, h) }

// open is a node whose histogram is built and whose split is not yet chosen.
type open struct {
	id   int
	hist []featHist
}

// grow grows a tree over rows[:n] with the gradients in gh.
func (g *grower) grow(n int) []tnode {
	nodes := []tnode{{feature: -1, begin: 0, end: n, sum: g.sumRows(g.rows[:n])}}
	level := []open{{id: 0, hist: g.getHist()}}
	g.buildHists(nodes, level)
	for depth := 0; depth < g.p.MaxDepth && len(level) > 0; depth++ {
		best := g.findSplits(nodes, level)
		var parents []open
		for i, o := range level {
			if best[i].gain <= minGain {
				g.putHist(o.hist)
				continue
			}
			nd := &nodes[o.id]
			nd.feature = best[i].feature
			nd.split = best[i]
			nd.route = nd.split.route(g.fb[nd.feature].kind)
			parents = append(parents, o)
		}
		if len(parents) == 0 {
			break
		}
		lefts := g.partition(nodes, parents)
		var next, small []open
		for i, o := range parents {
			l, r := len(nodes), len(nodes)+1
			parent := nodes[o.id]
			mid := parent.begin + lefts[i]
			nodes = append(nodes,
				tnode{feature: -1, begin: parent.begin, end: mid, sum: parent.split.left},
				tnode{feature: -1, begin: mid, end: parent.end, sum: parent.split.right})
			nodes[o.id].left, nodes[o.id].right = l, r
			if depth+1 == g.p.MaxDepth {
				g.putHist(o.hist)
				continue
			}
			// Build the smaller child; the larger one is the parent minus it.
			sm, lg := l, r
			if nodes[r].end-nodes[r].begin < nodes[l].end-nodes[l].begin {
				sm, lg = r, l
			}
			s := open{id: sm, hist: g.getHist()}
			small = append(small, s)
			next = append(next, s, open{id: lg, hist: o.hist})
		}
		g.buildHists(nodes, small)
		g.subtract(next)
		level = next
	}
	for i := range nodes {
		nd := &nodes[i]
		// A child left without rows (possible only with minChildWeight 0,
		// through rounding) has no gradient to follow.
		if nd.end > nd.begin {
			nd.weight = -nd.sum.g / (nd.sum.h + g.p.Lambda) * g.p.LearningRate
		}
	}
	prune(nodes, 0, g.p.MinSplitGain)
	return compact(nodes)
}

// sumRows adds the gradients of rows in fixed blocks, so the sum does not
// depend on the thread count.
func (g *grower) sumRows(rows []uint32) gpair {
	const block = 1 << 16
	parts := make([]gpair, (len(rows)+block-1)/block)
	parallelFor(len(parts), g.threads, func(b int) {
		var s gpair
		for _, r := range rows[b*block : min((b+1)*block, len(rows))] {
			s = s.add(g.gh[r])
		}
		parts[b] = s
	})
	var s gpair
	for _, p := range parts {
		s = s.add(p)
	}
	return s
}

// gatherBlock is how many rows one gather task moves.
const gatherBlock = 1 << 13

// histChunk is the most rows one histogram task sums; bigger nodes are
// summed in chunks, in parallel, and the chunks' histograms added.
const histChunk = 1 << 16

// bandWidth is the most features one histogram task covers.
const bandWidth = 16

// denseShare: a node holding at least 1/denseShare of the rows its row
// numbers span is read in place rather than gathered.
const denseShare = 3

// buildHists fills the histograms of the given nodes from their rows:
// scattered rows are gathered into packed first, then tasks of one band of
// features over one chunk of a node's rows sum them.
func (g *grower) buildHists(nodes []tnode, todo []open) {
	if len(todo) == 0 {
		return
	}
	m, nw := g.m, g.m.stride/8
	// A node reads its packed copy, or in place through its rows.
	type src struct {
		bins []uint8
		gh   []gpair
		rows []uint32
	}
	srcs := make([]src, len(todo))
	type gatherTask struct{ lo, hi, at int }
	var tasks []gatherTask
	at := 0
	for i, o := range todo {
		nd := &nodes[o.id]
		size := nd.end - nd.begin
		rows := g.rows[nd.begin:nd.end]
		if size == 0 || size*denseShare >= int(rows[size-1]-rows[0])+1 {
			// Rows dense enough in the matrix for its cache lines to be
			// mostly theirs: read in place.
			srcs[i] = src{rows: rows}
			continue
		}
		srcs[i] = src{bins: byteView(g.packed[at*nw : (at+size)*nw]), gh: g.packedGH[at : at+size]}
		for lo := nd.begin; lo < nd.end; lo += gatherBlock {
			hi := min(lo+gatherBlock, nd.end)
			tasks = append(tasks, gatherTask{lo, hi, at + lo - nd.begin})
		}
		at += size
	}
	parallelFor(len(tasks), g.threads, func(t int) {
		k := tasks[t]
		gather(g.packed[k.at*nw:], g.packedGH[k.at:], m.words, nw, g.gh, g.rows[k.lo:k.hi])
	})
	// Big nodes are cut into fixed chunks of rows, each summed into its own
	// histogram; the chunks do not depend on the thread count, and adding
	// their histograms in chunk order keeps the sums the same on any machine.
	type histTask struct {
		node, band, lo, hi int
		out                []featHist // the band's histograms
	}
	var hists []histTask
	chunks := 0
	for _, o := range todo {
		if size := nodes[o.id].end - nodes[o.id].begin; size > histChunk {
			chunks += (size + histChunk - 1) / histChunk
		}
	}
	if need := chunks * m.nf; len(g.partial) < need {
		g.partial = make([]featHist, need)
	}
	type reduceTask struct {
		node, band int
		parts      [][]featHist
	}
	var reduces []reduceTask
	next := 0
	for i, o := range todo {
		size := nodes[o.id].end - nodes[o.id].begin
		for b, band := range g.bands {
			if size <= histChunk {
				hists = append(hists, histTask{i, b, 0, size, o.hist[band[0]:band[1]]})
				continue
			}
			r := reduceTask{node: i, band: b}
			for lo := 0; lo < size; lo += histChunk {
				part := g.partial[next : next+band[1]-band[0]]
				next += band[1] - band[0]
				hists = append(hists, histTask{i, b, lo, min(lo+histChunk, size), part})
				r.parts = append(r.parts, part)
			}
			reduces = append(reduces, r)
		}
	}
	// Biggest tasks first, so no thread is left with a long one at the end.
	slices.SortStableFunc(hists, func(a, b histTask) int { return cmp.Compare(b.hi-b.lo, a.hi-a.lo) })
	parallelFor(len(hists), g.threads, func(t int) {
		k := hists[t]
		f0, s := g.bands[k.band][0], srcs[k.node]
		if s.rows != nil {
			buildHistRows(k.out, m.bins, m.stride, f0, g.gh, s.rows[k.lo:k.hi])
		} else {
			buildHist(k.out, s.bins[k.lo*m.stride:], m.stride, f0, s.gh[k.lo:k.hi])
		}
	})
	parallelFor(len(reduces), g.threads, func(t int) {
		r := reduces[t]
		band := g.bands[r.band]
		out := todo[r.node].hist[band[0]:band[1]]
		copy(out, r.parts[0])
		for _, part := range r.parts[1:] {
			for f := range out {
				a, b := &out[f], &part[f]
				for k := range a {
					a[k].g += b[k].g
					a[k].h += b[k].h
				}
			}
		}
	})
}

// gather copies the bins and gradients of rows to dst and dgh, in order.
func gather(dst []uint64, dgh []gpair, words []uint64, nw int, gh []gpair, rows []uint32) {
	dgh = dgh[:len(rows)]
	for i, r := range rows {
		s := words[int(r)*nw : int(r)*nw+nw]
		d := dst[i*nw : i*nw+nw]
		for k := range s {
			d[k] = s[k]
		}
		dgh[i] = gh[r]
	}
}

// buildHist is the hot loop of training: for each row, add its gradient
// pair to the bin of each feature in hs (features f0, f0+1, ...). Row i's
// bins start at bins[i*stride].
func buildHist(hs []featHist, bins []uint8, stride, f0 int, gh []gpair) {
	clear(hs)
	for i, p := range gh {
		o := i*stride + f0
		rb := bins[o : o+len(hs)]
		for j := range hs {
			e := &hs[j][rb[j]]
			e.g += p.g
			e.h += p.h
		}
	}
}

// buildHistRows is buildHist reading rows in place in the matrix.
func buildHistRows(hs []featHist, bins []uint8, stride, f0 int, gh []gpair, rows []uint32) {
	clear(hs)
	for _, r := range rows {
		p := gh[r]
		o := int(r)*stride + f0
		rb := bins[o : o+len(hs)]
		for j := range hs {
			e := &hs[j][rb[j]]
			e.g += p.g
			e.h += p.h
		}
	}
}

// subtract turns each larger child's buffer, which holds its parent's
// histogram, into the parent's minus its smaller sibling's.
func (g *grower) subtract(next []open) {
	parallelFor(len(next)/2, g.threads, func(i int) {
		sm, lg := next[2*i].hist, next[2*i+1].hist
		for f := range lg {
			a, b := &lg[f], &sm[f]
			for k := range a {
				a[k].g -= b[k].g
				a[k].h -= b[k].h
			}
		}
	})
}

// findSplits finds each open node's best split, one task per node and feature.
func (g *grower) findSplits(nodes []tnode, level []open) []split {
	nf := g.m.nf
	cand := make([]split, len(level)*nf)
	parallelFor(len(cand), g.threads, func(t int) {
		o, f := level[t/nf], t%nf
		cand[t] = split{feature: -1}
		if !g.allowed[f] {
			return
		}
		findSplit(&cand[t], f, g.fb[f], &o.hist[f], nodes[o.id].sum, &g.p)
	})
	best := make([]split, len(level))
	for i := range level {
		best[i] = split{feature: -1}
		for _, c := range cand[i*nf : (i+1)*nf] {
			// Ties go to the lower feature index.
			if c.feature >= 0 && c.gain > best[i].gain {
				best[i] = c
			}
		}
	}
	return best
}

func score(s gpair, lambda float64) float64 { return s.g * s.g / (s.h + lambda) }

// findSplit sets out to the best split of feature f, if any beats out.gain.
// Missing values try both sides (xgboost's learned default direction).
// Categories are ordered by their leaf weight and split like a numeric
// feature along that order (LightGBM's sorted-gradient split; Fisher 1958
// shows it optimal for squared loss).
func findSplit(out *split, f int, fb *featureBins, h *featHist, total gpair, p *Params) {
	parent := score(total, p.Lambda)
	miss := h[missingBin]
	nb := fb.values()
	bestAt := -1
	try := func(at int, left gpair, defaultLeft bool) {
		right := total.sub(left)
		if left.h < p.MinChildWeight || right.h < p.MinChildWeight || left.h <= 0 || right.h <= 0 {
			return
		}
		gain := score(left, p.Lambda) + score(right, p.Lambda) - parent
		if gain > out.gain {
			*out = split{gain: gain, feature: f, defaultLeft: defaultLeft, left: left, right: right}
			bestAt = at
		}
	}
	// order is the bins in split order; a split sends order[:k+1] left.
	var orderBuf [256]uint8
	order := orderBuf[:0]
	for b := 1; b <= nb; b++ {
		if h[b].h > 0 {
			order = append(order, uint8(b))
		}
	}
	if fb.kind == model.Categorical {
		w := func(b uint8) float64 { return -h[b].g / (h[b].h + p.Lambda) }
		slices.SortFunc(order, func(a, b uint8) int {
			if c := cmp.Compare(w(a), w(b)); c != 0 {
				return c
			}
			return cmp.Compare(a, b)
		})
	}
	var acc gpair
	for k, b := range order {
		acc = acc.add(h[b])
		if k < len(order)-1 {
			try(k, acc.add(miss), true)
		}
		if miss.h > 0 {
			try(k, acc, false)
		}
	}
	if bestAt < 0 {
		return
	}
	if fb.kind == model.Categorical {
		for _, b := range order[:bestAt+1] {
			out.cats[b/64] |= 1 << (b % 64)
		}
		return
	}
	out.bin = int(order[bestAt])
	if bestAt == len(order)-1 {
		// Every value the node saw goes left: so do values it did not see.
		out.bin = nb
	}
}

// partitionBlock is how many rows one partition task moves.
const partitionBlock = 1 << 14

// partition splits each parent's rows stably by its route and returns how
// many went left, per parent. Blocks first sort their rows into scratch
// (left ones forward, right ones backward from the block's end), then copy
// them to their places.
func (g *grower) partition(nodes []tnode, parents []open) []int {
	type block struct{ parent, lo, hi, left int }
	var blocks []block
	for i, o := range parents {
		nd := &nodes[o.id]
		for lo := nd.begin; lo < nd.end; lo += partitionBlock {
			blocks = append(blocks, block{parent: i, lo: lo, hi: min(lo+partitionBlock, nd.end)})
		}
	}
	n := g.m.n
	parallelFor(len(blocks), g.threads, func(i int) {
		b := &blocks[i]
		nd := &nodes[parents[b.parent].id]
		route, col := nd.route, g.m.cols[nd.feature*n:(nd.feature+1)*n]
		out := g.scratch[b.lo:b.hi]
		// Branch-free: a row is written to both ends and the side it
		// belongs to advances; a coin-flip branch would mispredict half the time.
		l, r := 0, len(out)
		for _, row := range g.rows[b.lo:b.hi] {
			left := b2i(route[col[row]])
			out[l] = row
			out[r-1] = row
			l += left
			r -= 1 - left
		}
		b.left = l
	})
	lefts := make([]int, len(parents))
	for _, b := range blocks {
		lefts[b.parent] += b.left
	}
	// Each block's destination: the node's left rows in block order, then
	// its right rows in block order.
	type dest struct{ left, right int }
	dests := make([]dest, len(blocks))
	nextLeft := make([]int, len(parents))
	nextRight := make([]int, len(parents))
	for i, o := range parents {
		nd := &nodes[o.id]
		nextLeft[i], nextRight[i] = nd.begin, nd.begin+lefts[i]
	}
	for i, b := range blocks {
		dests[i] = dest{nextLeft[b.parent], nextRight[b.parent]}
		nextLeft[b.parent] += b.left
		nextRight[b.parent] += b.hi - b.lo - b.left
	}
	parallelFor(len(blocks), g.threads, func(i int) {
		b, d := blocks[i], dests[i]
		copy(g.rows[d.left:], g.scratch[b.lo:b.lo+b.left])
		right := g.rows[d.right : d.right+b.hi-b.lo-b.left]
		for k, j := 0, b.hi-1; k < len(right); k, j = k+1, j-1 {
			right[k] = g.scratch[j]
		}
	})
	return lefts
}

// prune turns splits that gain less than minSplitGain, and whose children
// are leaves, into leaves, bottom-up (xgboost's gamma).
func prune(nodes []tnode, i int, minSplitGain float64) {
	nd := &nodes[i]
	if nd.leaf() {
		return
	}
	prune(nodes, nd.left, minSplitGain)
	prune(nodes, nd.right, minSplitGain)
	if nodes[nd.left].leaf() && nodes[nd.right].leaf() && nd.split.gain < minSplitGain {
		nd.feature = -1
	}
}

// compact renumbers the nodes reachable from the root breadth-first.
func compact(nodes []tnode) []tnode {
	out := []tnode{nodes[0]}
	for i := 0; i < len(out); i++ {
		if out[i].leaf() {
			continue
		}
		l, r := out[i].left, out[i].right
		out[i].left, out[i].right = len(out), len(out)+1
		out = append(out, nodes[l], nodes[r])
	}
	return out
}

// predictBinned walks a grown tree for one binned row.
func predictBinned(nodes []tnode, row []uint8) float64 {
	i := 0
	for !nodes[i].leaf() {
		nd := &nodes[i]
		if nd.route[row[nd.feature]] {
			i = nd.left
		} else {
			i = nd.right
		}
	}
	return nodes[i].weight
}
