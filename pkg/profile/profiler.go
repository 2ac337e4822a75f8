package profile

import "fmt"

// ColumnSpec names a column and says how to read it.
type ColumnSpec struct {
	Name string     `json:"name"`
	Kind ColumnKind `json:"kind"`
}

// Profiler profiles rows as they stream past, in bounded memory whatever
// the number of rows (a few tens of KiB per column). It is not safe for
// concurrent use; profile partitions with one Profiler each and Merge.
type Profiler struct {
	rows int64
	cols []columnState
}

type columnState struct {
	spec                  ColumnSpec
	count, nulls, invalid int64
	sk                    Sketches
	xs                    []float64 // ObserveValues's numbers, reused
}

// NewProfiler returns a profiler for rows with these columns, in order. The
// names must be distinct and the kinds valid (ColumnKind.Valid): the schema
// is the caller's, so a bad one is a programming error and panics.
func NewProfiler(cols []ColumnSpec) *Profiler {
	p := &Profiler{cols: make([]columnState, len(cols))}
	seen := make(map[string]bool, len(cols))
	for i, c := range cols {
		if !c.Kind.Valid() {
			panic(fmt.Sprintf("profile: column %q has unknown kind %q", c.Name, c.Kind))
		}
		if seen[c.Name] {
			panic(fmt.Sprintf("profile: duplicate column %q", c.Name))
		}
		seen[c.Name] = true
		p.cols[i] = columnState{spec: c, sk: newSketches(c.Kind)}
	}
	return p
}

// Observe adds one row: values[i] is column i's value, and null[i] (null
// may be nil: no nulls) says it is missing, in which case values[i] is not
// read. A value that does not parse as its column's kind counts as invalid.
// The row must have one value per column; the profiler keeps some value
// strings (frequent categories), so they must not be modified afterwards.
func (p *Profiler) Observe(values []string, null []bool) {
	if len(values) != len(p.cols) || (null != nil && len(null) != len(p.cols)) {
		panic(fmt.Sprintf("profile: row has %d values and %d null flags for %d columns", len(values), len(null), len(p.cols)))
	}
	p.rows++
	for i := range p.cols {
		c := &p.cols[i]
		if null != nil && null[i] {
			c.nulls++
			continue
		}
		c.observe(values[i])
	}
}

// ObserveN adds the same row n times, as n calls of Observe would, at the
// cost of one: how a caller that counts repeated values profiles them.
func (p *Profiler) ObserveN(values []string, null []bool, n int64) {
	if len(values) != len(p.cols) || (null != nil && len(null) != len(p.cols)) {
		panic(fmt.Sprintf("profile: row has %d values and %d null flags for %d columns", len(values), len(null), len(p.cols)))
	}
	if n <= 0 {
		return
	}
	p.rows += n
	for i := range p.cols {
		c := &p.cols[i]
		if null != nil && null[i] {
			c.nulls += n
			continue
		}
		c.observeN(values[i], n)
	}
}

// ObserveValues adds values, none of them null, to column col, as Observe
// would one row at a time, but a batch at a time: numbers and timestamps
// go into the quantile sketch together (sketch.KLL.UpdateAll), which costs
// less. Rows does not change: the values are of rows the caller counts
// (profiling column by column, the caller takes each column's profile).
func (p *Profiler) ObserveValues(col int, values []string) {
	c := &p.cols[col]
	parse := parseNumber
	switch c.spec.Kind {
	case Numeric:
	case Timestamp:
		parse = ParseTimestamp
	default:
		for _, v := range values {
			c.observe(v)
		}
		return
	}
	xs := c.xs[:0]
	for _, v := range values {
		x, ok := parse(v)
		if !ok {
			c.invalid++
			continue
		}
		c.sk.Distinct.AddFloat(x)
		xs = append(xs, x)
	}
	c.count += int64(len(xs))
	c.sk.Moments.AddAll(xs)
	c.sk.Quantiles.UpdateAll(xs)
	c.xs = xs
}

func (c *columnState) observeN(v string, n int64) {
	var x float64
	ok := false
	switch c.spec.Kind {
	case Numeric:
		x, ok = parseNumber(v)
	case Timestamp:
		x, ok = ParseTimestamp(v)
	case Categorical:
		c.count += n
		c.sk.TopK.AddN(v, n)
		c.sk.Distinct.AddString(v)
		return
	case Bool:
		b, valid := ParseBool(v)
		if !valid {
			c.invalid += n
			return
		}
		c.count += n
		if b {
			c.sk.TopK.AddN("true", n)
		} else {
			c.sk.TopK.AddN("false", n)
		}
		return
	}
	if !ok {
		c.invalid += n
		return
	}
	c.count += n
	c.sk.Moments.AddN(x, n)
	c.sk.Quantiles.UpdateN(x, n)
	c.sk.Distinct.AddFloat(x)
}

func (c *columnState) observe(v string) {
	switch c.spec.Kind {
	case Numeric:
		x, ok := parseNumber(v)
		if !ok {
			c.invalid++
			return
		}
		c.addNumber(x)
	case Timestamp:
		x, ok := ParseTimestamp(v)
		if !ok {
			c.invalid++
			return
		}
		c.addNumber(x)
	case Categorical:
		c.count++
		c.sk.TopK.Add(v)
		c.sk.Distinct.AddString(v)
	case Bool:
		b, ok := ParseBool(v)
		if !ok {
			c.invalid++
			return
		}
		c.count++
		if b {
			c.sk.TopK.Add("true")
		} else {
			c.sk.TopK.Add("false")
		}
	}
}

func (c *columnState) addNumber(x float64) {
	c.count++
	c.sk.Moments.Add(x)
	c.sk.Quantiles.Update(x)
	c.sk.Distinct.AddFloat(x)
}

// Rows returns how many rows were observed.
func (p *Profiler) Rows() int64 { return p.rows }

// Profile returns the profile of the rows so far. It is a snapshot: the
// profiler can go on observing without changing it.
func (p *Profiler) Profile() *Profile {
	out := &Profile{Rows: p.rows, Columns: make([]*ColumnProfile, len(p.cols))}
	for i := range p.cols {
		c := &p.cols[i]
		cp := &ColumnProfile{
			Name: c.spec.Name, Kind: c.spec.Kind,
			Count: c.count, Nulls: c.nulls, Invalid: c.invalid,
			Sketches: c.sk.clone(),
		}
		cp.summarize()
		out.Columns[i] = cp
	}
	return out
}
