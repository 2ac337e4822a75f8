package ingestion

import (
	"cmp"
	"errors"
	"hash/maphash"
	"io"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gyreml/gyre/pkg/privacy"
	"github.com/gyreml/gyre/pkg/profile"
	"github.com/gyreml/gyre/pkg/quality"
	"github.com/gyreml/gyre/pkg/tabular"
)

// batchRows is how many records travel together from the parser to the
// workers: big enough to make the hand-over cheap, small enough to keep
// memory flat.
const batchRows = 512

// feedBatches is how many batches a worker's feed holds.
const feedBatches = 16

// rebalanceEvery is how many batches the workers go between two shares of
// the columns by what each cost in the last ones (32,768 rows).
const rebalanceEvery = 32768 / batchRows

// The value dictionaries are bounded over all columns, by count and by
// bytes of the values (about 64 MiB at most with their entries and the
// copies' growth): a column gets an equal share of each, at most 16,384
// values.
const (
	dictionaryValues = 1 << 18
	dictionaryBytes  = 16 << 20
)

// batch is batchRows records, column by column, as the parser read them.
// Every worker reads it; the last one done recycles it.
type batch struct {
	*tabular.Batch
	readers atomic.Int32
}

func newBatch(cols int) *batch {
	return &batch{Batch: tabular.NewBatch(cols, batchRows)}
}

// checks are what pass 1 computes over every value: schema inference, the
// rules, the privacy scan, k-anonymity and the profile. They run column by
// column on workers beside the parser (passOneWorkers: two on two cores).
//
// A column remembers the distinct values it has seen (up to its share of
// the dictionaries' bounds) with what the checks made of each: a value seen before
// costs one lookup and a few counters, and the profile and the inferred
// type take each distinct value once, with its count, at the end. Most
// columns of real data (categories, flags, small integers, dates) repeat
// their values. A column with more distinct values goes "raw" from the
// first one past its share: every value is then checked as it comes.
type checks struct {
	header   []string
	expected tabular.Schema
	cols     []*columnState
	checker  *quality.Checker
	kanon    *privacy.KAnonymity
	seed     maphash.Seed
	// limit and byteLimit are a column's share of the dictionaries.
	limit, byteLimit int

	// The quasi-identifiers' value hashes and nulls in the current batch,
	// by quasi-identifier then row: filled by worker 0, which owns those
	// columns, and read by it for k-anonymity.
	qiHash [][]uint64
	qiNull [][]bool

	workers   int
	owner     []int // the worker of each column
	kanonCost time.Duration
	barrier   barrier
}

// columnState is one column's share of the checks.
type columnState struct {
	j       int
	name    string
	dict    *dictionary // the values remembered; nil once raw
	entries []entry     // what the checks made of each, by index
	// tally is, for each entry, its count times two, plus one when its
	// rows matter (a privacy hit, a failed rule, a unique check, the empty
	// string): apart from the entries, so that counting a value touches 8
	// bytes. A value whose rows do not matter is counted in clean, which
	// the scanner and the checker take at the end of the batch.
	tally     []uint64
	clean     int64
	nulls     int64
	infer     *tabular.Inferrer // this column alone
	scan      *privacy.Scanner  // this column alone
	hasChecks bool
	qi        int // index among the quasi-identifiers; -1 if not one
	// prof profiles a raw column, from when it went raw, as kind; raw
	// holds the batch's values for it and the inferrer.
	prof *profile.Profiler
	kind profile.ColumnKind
	raw  []string
	row  []string // a one-value row, reused
	cost time.Duration
}

// entry is a distinct value of a column and what the checks made of it.
type entry struct {
	hash    uint64 // for k-anonymity
	verdict quality.Verdict
	hits    privacy.Hits
}

func newChecks(header []string, checker *quality.Checker, scan func(column string) (*privacy.Scanner, error), kanon *privacy.KAnonymity, expected tabular.Schema, workers int) (*checks, error) {
	cs := &checks{header: header, expected: expected, checker: checker, kanon: kanon, seed: maphash.MakeSeed(), workers: workers,
		limit: min(dictionaryValues/len(header), 16384), byteLimit: dictionaryBytes / len(header), owner: make([]int, len(header))}
	qi := map[int]int{}
	if kanon != nil {
		for n, j := range kanon.Columns() {
			qi[j] = n
		}
		cs.qiHash = make([][]uint64, len(qi))
		cs.qiNull = make([][]bool, len(qi))
		for n := range len(qi) {
			cs.qiHash[n], cs.qiNull[n] = make([]uint64, batchRows), make([]bool, batchRows)
		}
	}
	for j, name := range header {
		sc, err := scan(name)
		if err != nil {
			return nil, err
		}
		c := &columnState{j: j, name: name, dict: newDictionary(), infer: tabular.NewInferrer([]string{name}), scan: sc,
			hasChecks: checker.HasChecks(j), qi: -1, row: make([]string, 1)}
		if n, ok := qi[j]; ok {
			c.qi = n
		}
		cs.cols = append(cs.cols, c)
		// The quasi-identifiers stay with worker 0; the rest take turns
		// until the first rebalance measures them.
		if c.qi < 0 {
			cs.owner[j] = j % workers
		}
	}
	cs.barrier.cond, cs.barrier.parties = sync.NewCond(&cs.barrier.mu), workers
	return cs, nil
}

// passOneWorkers is how many workers check columns: every core but the
// parser's, at least two.
func passOneWorkers(columns int) int {
	return max(2, min(runtime.GOMAXPROCS(0)-1, columns))
}

// start runs the workers. send gives a batch to every worker (the last one
// done with it calls recycle); finish waits for them after the last batch.
func (cs *checks) start(recycle func(*batch)) (send func(*batch), finish func()) {
	feeds := make([]chan *batch, cs.workers)
	var wg sync.WaitGroup
	for w := range feeds {
		// Room for a worker to fall 16 batches behind: while a worker
		// waits for a slower one at a rebalance, the parser goes on
		// filling their feeds instead of waiting too (with 4, a core
		// idled 10-15% of pass 1).
		feeds[w] = make(chan *batch, feedBatches)
		wg.Go(func() { cs.work(w, feeds[w], recycle) })
	}
	send = func(b *batch) {
		b.readers.Store(int32(cs.workers))
		for _, f := range feeds {
			f <- b
		}
	}
	finish = func() {
		for _, f := range feeds {
			close(f)
		}
		wg.Wait()
	}
	return send, finish
}

// run reads the records of reader a batch at a time, writes them to out,
// and has the workers check them. Batches the workers are done with are
// read into again: a batch's values are valid until then, and the checks
// copy what they keep. A failure to write is a *writeError.
func (cs *checks) run(reader tabular.Reader, out *tabular.CSVWriter) (rows int64, err error) {
	free := make(chan *batch, feedBatches+8)
	send, finish := cs.start(func(b *batch) {
		if b.readers.Add(-1) == 0 {
			select {
			case free <- b:
			default: // enough spare batches: let this one go
			}
		}
	})
	defer finish()
	for {
		var cur *batch
		select {
		case cur = <-free:
		default:
			cur = newBatch(len(cs.header))
		}
		err := tabular.ReadBatch(reader, cur.Batch)
		if errors.Is(err, io.EOF) {
			return rows, nil
		}
		if err != nil {
			return rows, err
		}
		rows += int64(cur.Len)
		if err := out.WriteBatch(cur.Batch); err != nil {
			return rows, &writeError{err}
		}
		send(cur)
	}
}

// writeError is a failure to write the records out, not bad input.
type writeError struct{ err error }

func (e *writeError) Error() string { return e.err.Error() }

// work is worker w's loop: its columns of every batch, and for worker 0 the
// rows' k-anonymity and count. Every rebalanceEvery batches the workers
// meet, and worker 0 shares the columns out again by what they cost.
func (cs *checks) work(w int, in <-chan *batch, done func(*batch)) {
	n := 0
	hashes, nulls := make([][]uint64, len(cs.qiHash)), make([][]bool, len(cs.qiHash))
	for b := range in {
		for _, c := range cs.cols {
			if cs.owner[c.j] == w {
				start := time.Now()
				cs.observe(c, b)
				c.cost += time.Since(start)
			}
		}
		if w == 0 {
			start := time.Now()
			cs.checker.AddRows(int64(b.Len))
			if cs.kanon != nil {
				for q := range cs.qiHash {
					hashes[q], nulls[q] = cs.qiHash[q][:b.Len], cs.qiNull[q][:b.Len]
				}
				cs.kanon.ObserveHashColumns(hashes, nulls)
			}
			cs.kanonCost += time.Since(start)
		}
		done(b)
		if n++; n%rebalanceEvery == 0 {
			cs.barrier.wait()
			if w == 0 {
				cs.rebalance()
			}
			cs.barrier.wait()
		}
	}
}

// rebalance shares the columns out by their cost since the last share,
// largest first to the least loaded worker; the quasi-identifiers stay with
// worker 0. The other workers wait at the barrier while it runs.
func (cs *checks) rebalance() {
	load := make([]time.Duration, cs.workers)
	load[0] = cs.kanonCost
	var free []*columnState
	for _, c := range cs.cols {
		if c.qi >= 0 {
			load[0] += c.cost
		} else {
			free = append(free, c)
		}
	}
	slices.SortStableFunc(free, func(a, b *columnState) int { return cmp.Compare(b.cost, a.cost) })
	for _, c := range free {
		w := 0
		for i := range load {
			if load[i] < load[w] {
				w = i
			}
		}
		cs.owner[c.j] = w
		load[w] += c.cost
	}
	for _, c := range cs.cols {
		c.cost = 0
	}
	cs.kanonCost = 0
}

// observe runs the checks of column c over the batch.
func (cs *checks) observe(c *columnState, b *batch) {
	j := c.j
	values, nulls := b.Column(j)
	for i, v := range values {
		row, null := b.Row(i), nulls[i]
		if c.qi >= 0 {
			cs.qiNull[c.qi][i] = null
		}
		if null {
			c.nulls++
			if c.hasChecks {
				cs.checker.ObserveNull(j, row)
			}
			continue
		}
		if c.dict != nil {
			if k, ok := c.dict.find(v); ok {
				if c.tally[k] += 2; c.tally[k]&1 == 0 {
					c.clean++
				} else {
					e := &c.entries[k]
					if v != "" {
						c.scan.Record(0, row, e.hits)
					}
					if c.hasChecks {
						cs.checker.Repeat(j, row, v, e.verdict)
					}
				}
				if c.qi >= 0 {
					cs.qiHash[c.qi][i] = c.entries[k].hash
				}
				continue
			}
			if len(c.entries) < cs.limit && c.dict.bytes+len(v) <= cs.byteLimit {
				v, _ = c.dict.add(v)
				e := entry{hits: c.scan.Scan(0, v), hash: maphash.String(cs.seed, v)}
				if v != "" {
					c.scan.Record(0, row, e.hits)
				}
				if c.hasChecks {
					e.verdict = cs.checker.ObserveValue(j, row, v)
				}
				if c.qi >= 0 {
					cs.qiHash[c.qi][i] = e.hash
				}
				c.entries = append(c.entries, e)
				rowsMatter := v == "" || c.scan.RowsMatter(0, e.hits) || c.hasChecks && !cs.checker.Passes(j, e.verdict)
				c.tally = append(c.tally, 2|boolBit(rowsMatter))
				continue
			}
			cs.goRaw(c)
		}
		if v != "" {
			c.scan.Record(0, row, c.scan.Scan(0, v))
		}
		if c.hasChecks {
			cs.checker.ObserveValue(j, row, v)
		}
		if c.qi >= 0 {
			cs.qiHash[c.qi][i] = maphash.String(cs.seed, v)
		}
		c.raw = append(c.raw, v)
	}
	if c.clean > 0 {
		c.scan.RecordMany(0, c.clean)
		if c.hasChecks {
			cs.checker.PassMany(j, c.clean)
		}
		c.clean = 0
	}
	// A raw column's values are inferred and profiled a batch at a time.
	if len(c.raw) > 0 {
		c.infer.ObserveValues(0, c.raw)
		c.prof.ObserveValues(0, c.raw)
		clear(c.raw) // no reference into the batch's memory outlives it
		c.raw = c.raw[:0]
	}
}

// replay gives observe (an inferrer's or a profiler's ObserveN) each
// remembered value, as a one-value row, with how many times it was seen.
func (c *columnState) replay(observe func(values []string, null []bool, n int64)) {
	for k, v := range c.dict.values {
		c.row[0] = v
		observe(c.row, nil, int64(c.tally[k]>>1))
	}
}

func boolBit(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// goRaw stops remembering c's values: those remembered go to the inferrer
// and to a profiler of the column's kind: the expected schema's, or else
// the type inferred so far.
func (cs *checks) goRaw(c *columnState) {
	cs.flushInferrer(c)
	schema := cs.expected
	if len(schema.Columns) == 0 {
		schema = c.infer.Schema()
	}
	c.kind = profileKinds([]string{c.name}, schema)[0]
	c.prof = profile.NewProfiler([]profile.ColumnSpec{{Name: c.name, Kind: c.kind}})
	c.replay(c.prof.ObserveN)
	c.dict, c.entries, c.tally = nil, nil, nil
}

// flushInferrer gives the inferrer each remembered value, with its count.
func (cs *checks) flushInferrer(c *columnState) {
	c.replay(c.infer.ObserveN)
}

// inferred is the schema of the data; call it once, after the last batch
// (it adds the nulls to the inferrers).
func (cs *checks) inferred() tabular.Schema {
	s := tabular.Schema{Columns: make([]tabular.SchemaColumn, len(cs.cols))}
	for i, c := range cs.cols {
		if c.dict != nil {
			cs.flushInferrer(c)
		}
		c.row[0] = ""
		c.infer.ObserveN(c.row, []bool{true}, c.nulls)
		s.Columns[i] = c.infer.Schema().Columns[0]
	}
	return s
}

// findings are the privacy scan's, in column order.
func (cs *checks) findings() []privacy.Finding {
	out := []privacy.Finding{}
	for _, c := range cs.cols {
		out = append(out, c.scan.Findings()...)
	}
	return out
}

// profile is the profile of every record as final profiles it, or nil when
// a raw column was profiled as another kind than final says (a value late
// in the file was not a number after all): then pass 2 profiles again.
// Call it once, after inferred: it adds the nulls to the profilers.
func (cs *checks) profile(final tabular.Schema, rows int64) *profile.Profile {
	out := &profile.Profile{Rows: rows, Columns: make([]*profile.ColumnProfile, len(cs.cols))}
	kinds := profileKinds(cs.header, final)
	for i, c := range cs.cols {
		p := c.prof
		if p == nil {
			p = profile.NewProfiler([]profile.ColumnSpec{{Name: c.name, Kind: kinds[i]}})
			c.replay(p.ObserveN)
		} else if c.kind != kinds[i] {
			return nil
		}
		c.row[0] = ""
		p.ObserveN(c.row, []bool{true}, c.nulls)
		out.Columns[i] = p.Profile().Columns[0]
	}
	return out
}

func profileKinds(header []string, schema tabular.Schema) []profile.ColumnKind {
	kinds := make([]profile.ColumnKind, len(header))
	for i, name := range header {
		kinds[i] = profile.Categorical
		if c, ok := schema.Column(name); ok {
			switch c.Type {
			case tabular.Int, tabular.Float:
				kinds[i] = profile.Numeric
			case tabular.Bool:
				kinds[i] = profile.Bool
			case tabular.Timestamp:
				kinds[i] = profile.Timestamp
			}
		}
	}
	return kinds
}

func columnSpecs(header []string, kinds []profile.ColumnKind) []profile.ColumnSpec {
	specs := make([]profile.ColumnSpec, len(header))
	for i, name := range header {
		specs[i] = profile.ColumnSpec{Name: name, Kind: kinds[i]}
	}
	return specs
}

// barrier is where the workers meet: each waits for all parties.
type barrier struct {
	mu      sync.Mutex
	cond    *sync.Cond
	parties int
	arrived int
	round   int
}

func (b *barrier) wait() {
	b.mu.Lock()
	defer b.mu.Unlock()
	round := b.round
	if b.arrived++; b.arrived == b.parties {
		b.arrived = 0
		b.round++
		b.cond.Broadcast()
		return
	}
	for round == b.round {
		b.cond.Wait()
	}
}
