// Package table is the columnar table that Gyre's built-in trainers and the
// evaluator read from a dataset version's canonical CSV, and the
// deterministic split of its rows into train and holdout, which the worker
// and the evaluator both rebuild from the dataset version and the split
// spec.
package table

import (
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"

	"github.com/gyreml/gyre/pkg/model"
	"github.com/gyreml/gyre/pkg/tabular"
)

// Column is one column of a Table. Null has an entry for every row and is
// true where the value is missing: an empty field (null or the empty
// string), or NaN in a numeric column. Where Null is true, F holds NaN
// (numeric) and S holds "" (categorical), so either test works.
type Column struct {
	Name string
	Kind model.Kind
	// F holds the values of a numeric column, nil for a categorical one.
	F []float64
	// S holds the values of a categorical column, nil for a numeric one.
	S    []string
	Null []bool
}

// Missing reports whether row i has no value.
func (c *Column) Missing(i int) bool { return c.Null[i] }

// Text is row i as text: a categorical value as it is, a number in its
// shortest exact form ("1.5", "2"), "" when missing. Class labels of a
// classification target are read this way, whatever the column's kind.
func (c *Column) Text(i int) string {
	switch {
	case c.Null[i]:
		return ""
	case c.Kind == model.Categorical:
		return c.S[i]
	default:
		return strconv.FormatFloat(c.F[i], 'g', -1, 64)
	}
}

// Value is row i as a model input value of the given kind; a numeric
// column read as categorical gives its Text.
func (c *Column) Value(i int, kind model.Kind) model.Value {
	switch {
	case c.Null[i]:
		return model.Value{Null: true}
	case kind == model.Numeric:
		return model.Value{F: c.F[i]}
	case c.Kind == model.Categorical:
		return model.Value{S: c.S[i]}
	default:
		return model.Value{S: c.Text(i)}
	}
}

// Table is a whole dataset in memory, column by column, in file order.
type Table struct {
	Columns []*Column
	Rows    int
}

// Column finds a column by name.
func (t *Table) Column(name string) (*Column, bool) {
	for _, c := range t.Columns {
		if c.Name == name {
			return c, true
		}
	}
	return nil, false
}

// Select is a new table of the given rows, in the order given.
func (t *Table) Select(rows []int) *Table {
	out := &Table{Columns: make([]*Column, len(t.Columns)), Rows: len(rows)}
	for j, c := range t.Columns {
		nc := &Column{Name: c.Name, Kind: c.Kind, Null: make([]bool, len(rows))}
		if c.Kind == model.Categorical {
			nc.S = make([]string, len(rows))
		} else {
			nc.F = make([]float64, len(rows))
		}
		for k, i := range rows {
			nc.Null[k] = c.Null[i]
			if nc.S != nil {
				nc.S[k] = c.S[i]
			} else {
				nc.F[k] = c.F[i]
			}
		}
		out.Columns[j] = nc
	}
	return out
}

// ModelRows builds the rows a model's Predict takes, one per table row
// listed (every row when rows is nil), with the inputs in the order given.
// A numeric input needs a numeric column; a categorical input reads either
// kind (numbers as their Text).
func (t *Table) ModelRows(inputs []model.Input, rows []int) ([]model.Row, error) {
	cols := make([]*Column, len(inputs))
	for j, in := range inputs {
		c, ok := t.Column(in.Name)
		if !ok {
			return nil, fmt.Errorf("input %q: no such column in the table", in.Name)
		}
		if in.Kind == model.Numeric && c.Kind != model.Numeric {
			return nil, fmt.Errorf("input %q is numeric but the column is %s", in.Name, c.Kind)
		}
		cols[j] = c
	}
	n := len(rows)
	if rows == nil {
		n = t.Rows
	}
	out := make([]model.Row, n)
	values := make([]model.Value, n*len(inputs))
	for k := range n {
		i := k
		if rows != nil {
			i = rows[k]
		}
		row := values[k*len(inputs) : (k+1)*len(inputs) : (k+1)*len(inputs)]
		for j, c := range cols {
			row[j] = c.Value(i, inputs[j].Kind)
		}
		out[k] = row
	}
	return out, nil
}

// Classes are the distinct non-missing values (as Text) of a column over
// the given rows (every row when nil), sorted: the class labels of a
// classification target, in the order models report probabilities.
func (c *Column) Classes(rows []int) []string {
	seen := make(map[string]bool)
	add := func(i int) {
		if !c.Null[i] {
			seen[c.Text(i)] = true
		}
	}
	if rows == nil {
		for i := range c.Null {
			add(i)
		}
	} else {
		for _, i := range rows {
			add(i)
		}
	}
	out := make([]string, 0, len(seen))
	for s := range seen {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// ReadCSV reads a whole CSV file (RFC 4180 with a header line, as
// pkg/tabular reads it) into a table. kinds gives the kind of the columns it
// names (naming a column the header lacks is an error); any other column is
// numeric when every non-empty value parses as a number, else categorical.
// A value that does not parse in a column kinds says is numeric is an error
// naming the line and column.
func ReadCSV(r io.Reader, kinds map[string]model.Kind) (*Table, error) {
	rd, err := tabular.NewReader(r, tabular.CSV, tabular.Options{})
	if err != nil {
		return nil, fmt.Errorf("read csv header: %w", err)
	}
	header := rd.Header()
	cols := make([]*builder, len(header))
	for j, name := range header {
		b := &builder{col: &Column{Name: name}}
		switch k, ok := kinds[name]; {
		case !ok:
			b.col.Kind, b.infer = model.Numeric, true
		case k == model.Numeric || k == model.Categorical:
			b.col.Kind = k
		default:
			return nil, fmt.Errorf("column %q: unknown kind %q (want numeric or categorical)", name, k)
		}
		cols[j] = b
	}
	for name := range kinds {
		if !slices.Contains(header, name) {
			return nil, fmt.Errorf("column %q given a kind is not in the header %v", name, header)
		}
	}
	rows := 0
	for {
		rec, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read csv: %w", err)
		}
		for j, b := range cols {
			if err := b.add(rows, rec.Values[j], rec.Null[j]); err != nil {
				return nil, fmt.Errorf("read csv: %w", &tabular.ParseError{Line: rec.Line, Column: header[j], Msg: err.Error()})
			}
		}
		rows++
	}
	t := &Table{Rows: rows, Columns: make([]*Column, len(cols))}
	for j, b := range cols {
		t.Columns[j] = b.col
	}
	return t, nil
}

// builder collects one column. An inferred column is numeric until a value
// does not parse; then it turns categorical, and the numbers read so far
// become their original text again.
type builder struct {
	col   *Column
	infer bool
	// raw is the original text of numbers whose shortest form differs
	// ("1.50", "007", "NaN"), by row, kept only while an inferred column
	// is numeric.
	raw map[int]string
}

func (b *builder) add(i int, v string, null bool) error {
	c := b.col
	null = null || v == ""
	c.Null = append(c.Null, null)
	if c.Kind == model.Categorical {
		if null {
			v = ""
		}
		c.S = append(c.S, v)
		return nil
	}
	if null {
		c.F = append(c.F, math.NaN())
		return nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		if !b.infer {
			return errors.New("not a number in a numeric column")
		}
		b.toCategorical()
		c.S = append(c.S, v)
		return nil
	}
	nan := math.IsNaN(f)
	if nan {
		c.Null[i] = true
	}
	if b.infer && (nan || strconv.FormatFloat(f, 'g', -1, 64) != v) {
		if b.raw == nil {
			b.raw = make(map[int]string)
		}
		b.raw[i] = v
	}
	c.F = append(c.F, f)
	return nil
}

func (b *builder) toCategorical() {
	c := b.col
	c.S = make([]string, len(c.F), cap(c.F))
	for i := range c.F {
		switch raw, ok := b.raw[i]; {
		case ok:
			// "NaN" is missing as a number but a value as text.
			c.S[i], c.Null[i] = raw, false
		case c.Null[i]:
		default:
			c.S[i] = strconv.FormatFloat(c.F[i], 'g', -1, 64)
		}
	}
	c.Kind, c.F, b.raw, b.infer = model.Categorical, nil, nil, false
}

// ResolveInputs checks a trainer's inputs against the table: each names a
// column other than target, once, and a numeric input a numeric column.
// No inputs means every column but the target, each of its column's kind.
func (t *Table) ResolveInputs(target string, inputs []model.Input) ([]model.Input, error) {
	if len(inputs) == 0 {
		for _, c := range t.Columns {
			if c.Name != target {
				inputs = append(inputs, model.Input{Name: c.Name, Kind: c.Kind})
			}
		}
		if len(inputs) == 0 {
			return nil, fmt.Errorf("no input columns besides the target %q", target)
		}
		return inputs, nil
	}
	seen := make(map[string]bool, len(inputs))
	for _, in := range inputs {
		c, ok := t.Column(in.Name)
		switch {
		case !ok:
			return nil, fmt.Errorf("input %q: no such column", in.Name)
		case in.Name == target:
			return nil, fmt.Errorf("input %q is the target", in.Name)
		case seen[in.Name]:
			return nil, fmt.Errorf("input %q given twice", in.Name)
		case in.Kind != model.Numeric && in.Kind != model.Categorical:
			return nil, fmt.Errorf("input %q: unknown kind %q", in.Name, in.Kind)
		case in.Kind == model.Numeric && c.Kind != model.Numeric:
			return nil, fmt.Errorf("input %q is numeric but its column is categorical", in.Name)
		}
		seen[in.Name] = true
	}
	return inputs, nil
}
