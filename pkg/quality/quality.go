// Package quality checks a dataset version against its schema and the data
// quality rules of a pipeline (spec.validation.rules), in one pass over the
// records and in memory bounded by the number of rules (a unique rule keeps
// one 8-byte hash per distinct value, up to UniqueLimit).
//
// A Report says, per rule, whether it passed, how many values it checked and
// how many failed, and the first offending row numbers. It never holds the
// offending values themselves: they may be personal data.
package quality

import (
	"fmt"
	"hash/maphash"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/gyreml/gyre/pkg/pipeline"
	"github.com/gyreml/gyre/pkg/tabular"
)

// MaxRows is how many offending row numbers a result lists.
const MaxRows = 10

// UniqueLimit bounds the distinct values a unique rule remembers, as 8-byte
// hashes in a table at most 3/4 full: 64 MiB at the limit. Past it, later
// values are still checked against the values remembered, and the result's
// Detail says so.
const UniqueLimit = 3 << 21

// Report is the outcome of checking one dataset version.
type Report struct {
	// Passed: every rule passed and no schema check failed.
	Passed bool  `json:"passed"`
	Rows   int64 `json:"rows"`
	// Rules has one result per check of each rule, in the rules' order: a
	// rule {column: age, min: 18, max: 120} gives "age: min 18" and
	// "age: max 120".
	Rules []RuleResult `json:"rules"`
	// SchemaViolations has the failed schema checks only: a column of the
	// schema missing from the data, values not of the column's type, nulls
	// in a column that is not nullable.
	SchemaViolations []RuleResult `json:"schemaViolations,omitempty"`
}

// RuleResult is the outcome of one check.
type RuleResult struct {
	// Rule names the check: "age: min 18", "email: unique", "minRows 1000".
	Rule string `json:"rule"`
	// Index is the rule's position in the rules list; -1 for schema checks.
	Index  int    `json:"index"`
	Column string `json:"column,omitempty"`
	Passed bool   `json:"passed"`
	// Checked counts the values checked (non-null values for value checks,
	// all rows for null checks and row counts); Failed, those that failed.
	Checked int64 `json:"checked"`
	Failed  int64 `json:"failed"`
	// Rows are the first MaxRows offending row numbers (1-based data rows).
	Rows   []int64 `json:"rows,omitempty"`
	Detail string  `json:"detail,omitempty"`
}

type checkKind int

const (
	notNull checkKind = iota
	minValue
	maxValue
	allowed
	pattern
	unique
	maxNullFraction
	isType
	missingColumn
)

// check accumulates one RuleResult.
type check struct {
	kind   checkKind
	result RuleResult

	bound      float64 // min, max, maxNullFraction
	allowed    map[string]struct{}
	re         *regexp.Regexp
	typ        tabular.ColumnType
	notNumeric int64
	seen       hashSet
	full       bool // seen reached UniqueLimit
	absent     bool // the column is not in the data
}

func (k *check) fail(row int64) {
	k.result.Failed++
	if len(k.result.Rows) < MaxRows {
		k.result.Rows = append(k.result.Rows, row)
	}
}

// column is the checks of one column of the data.
type column struct {
	index  int
	checks []*check
}

// Checker checks records as they stream by. It is not safe for concurrent
// use, except that calls of ObserveNull, ObserveValue and Repeat on
// different columns may run at once (each column's checks are its own),
// beside AddRows, which touches only the row count.
type Checker struct {
	rows    int64
	columns []*column
	byIndex []*column // by header index; nil for a column without checks
	// checks and schemaChecks in report order.
	checks       []*check
	schemaChecks []*check
	rowChecks    []rowCheck
	seed         maphash.Seed
}

type rowCheck struct {
	index    int
	min, max int64
}

// SchemaFromSpec is the schema a pipeline declares; a column is nullable
// unless it says otherwise.
func SchemaFromSpec(s pipeline.Schema) tabular.Schema {
	out := tabular.Schema{Columns: make([]tabular.SchemaColumn, len(s.Columns))}
	for i, c := range s.Columns {
		out.Columns[i] = tabular.SchemaColumn{Name: c.Name, Type: tabular.ColumnType(c.Type), Nullable: c.Nullable == nil || *c.Nullable}
	}
	return out
}

// NewChecker prepares the checks of schema and rules for records with the
// given header. A rule naming a column that is neither in the header nor in
// the schema, or with a regex that does not compile, is an error naming the
// rule. A column in the schema but not in the data fails its checks.
func NewChecker(header []string, schema tabular.Schema, rules []pipeline.Rule) (*Checker, error) {
	c := &Checker{seed: maphash.MakeSeed()}
	byName := make(map[string]*column, len(header))
	for i, name := range header {
		byName[name] = &column{index: i}
	}
	add := func(name string, k *check) {
		k.result.Column = name
		if col, ok := byName[name]; ok {
			col.checks = append(col.checks, k)
		}
	}

	for _, sc := range schema.Columns {
		if _, ok := byName[sc.Name]; !ok {
			k := &check{kind: missingColumn, result: RuleResult{Rule: sc.Name + ": present", Index: -1, Column: sc.Name, Detail: "column in the schema but not in the data"}}
			c.schemaChecks = append(c.schemaChecks, k)
			continue
		}
		if sc.Type != tabular.String && sc.Type != tabular.Category {
			k := &check{kind: isType, typ: sc.Type, result: RuleResult{Rule: fmt.Sprintf("%s: type %s", sc.Name, sc.Type), Index: -1}}
			add(sc.Name, k)
			c.schemaChecks = append(c.schemaChecks, k)
		}
		if !sc.Nullable {
			k := &check{kind: notNull, result: RuleResult{Rule: sc.Name + ": not nullable", Index: -1}}
			add(sc.Name, k)
			c.schemaChecks = append(c.schemaChecks, k)
		}
	}

	for i, r := range rules {
		if r.MinRows > 0 || r.MaxRows > 0 {
			c.rowChecks = append(c.rowChecks, rowCheck{index: i, min: r.MinRows, max: r.MaxRows})
		}
		if r.Column == "" {
			if r.MinRows == 0 && r.MaxRows == 0 {
				return nil, fmt.Errorf("rules[%d]: want a column with a check, or minRows/maxRows", i)
			}
			continue
		}
		_, inData := byName[r.Column]
		if _, inSchema := schema.Column(r.Column); !inData && !inSchema {
			return nil, fmt.Errorf("rules[%d].column: column %q is not in the data", i, r.Column)
		}
		ks, err := ruleChecks(i, r)
		if err != nil {
			return nil, err
		}
		if len(ks) == 0 {
			return nil, fmt.Errorf("rules[%d]: no check for column %q", i, r.Column)
		}
		for _, k := range ks {
			k.absent = !inData
			add(r.Column, k)
			c.checks = append(c.checks, k)
		}
	}

	c.byIndex = make([]*column, len(header))
	for i, name := range header {
		if col := byName[name]; len(col.checks) > 0 {
			c.columns = append(c.columns, col)
			c.byIndex[i] = col
		}
	}
	return c, nil
}

// ruleChecks makes one check per condition of a column rule.
func ruleChecks(i int, r pipeline.Rule) ([]*check, error) {
	var ks []*check
	mk := func(kind checkKind, name string) *check {
		k := &check{kind: kind, result: RuleResult{Rule: r.Column + ": " + name, Index: i}}
		ks = append(ks, k)
		return k
	}
	if r.NotNull {
		mk(notNull, "notNull")
	}
	if r.Min != nil {
		mk(minValue, "min "+number(*r.Min)).bound = *r.Min
	}
	if r.Max != nil {
		mk(maxValue, "max "+number(*r.Max)).bound = *r.Max
	}
	if len(r.Allowed) > 0 {
		set := make(map[string]struct{}, len(r.Allowed))
		for _, v := range r.Allowed {
			set[v] = struct{}{}
		}
		mk(allowed, "allowed "+allowedList(r.Allowed)).allowed = set
	}
	if r.Regex != "" {
		// The whole value must match, as a schema's pattern would.
		re, err := regexp.Compile(`^(?:` + r.Regex + `)$`)
		if err != nil {
			return nil, fmt.Errorf("rules[%d].regex: %w", i, err)
		}
		mk(pattern, "regex "+r.Regex).re = re
	}
	if r.Unique {
		mk(unique, "unique")
	}
	if r.MaxNullFraction != nil {
		mk(maxNullFraction, "maxNullFraction "+number(*r.MaxNullFraction)).bound = *r.MaxNullFraction
	}
	return ks, nil
}

func number(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

func allowedList(values []string) string {
	const shown = 5
	if len(values) > shown {
		return fmt.Sprintf("[%s, ... (%d values)]", strings.Join(values[:shown], ", "), len(values))
	}
	return "[" + strings.Join(values, ", ") + "]"
}

// Observe checks one record; its Values and Null must have one entry per
// header column. It keeps no reference to them.
func (c *Checker) Observe(rec tabular.Record) {
	c.rows++
	for _, col := range c.columns {
		if rec.Null[col.index] {
			c.observeNull(col, rec.Row)
		} else {
			c.observeValue(col, rec.Row, rec.Values[col.index])
		}
	}
}

// Verdict is what a column's checks made of one value: bit i stands for
// the column's check i (the first 64; Repeat checks a column with more
// again). A caller that sees the same value again counts it with Repeat,
// without checking it again.
type Verdict struct {
	failed, notNumeric uint64
}

// HasChecks reports whether column j (by header index) has checks.
func (c *Checker) HasChecks(j int) bool { return c.byIndex[j] != nil }

// AddRows counts n records whose columns are observed one by one with
// ObserveNull, ObserveValue and Repeat (Observe counts its own).
func (c *Checker) AddRows(n int64) { c.rows += n }

// ObserveNull checks a null in column j at row.
func (c *Checker) ObserveNull(j int, row int64) {
	if col := c.byIndex[j]; col != nil {
		c.observeNull(col, row)
	}
}

// ObserveValue checks value v of column j at row.
func (c *Checker) ObserveValue(j int, row int64, v string) Verdict {
	if col := c.byIndex[j]; col != nil {
		return c.observeValue(col, row, v)
	}
	return Verdict{}
}

// Passes reports whether a value of column j with verdict vd (from
// ObserveValue) passes every check of the column when seen again: its row
// then need not be recorded, and PassMany can count such values together.
// A unique check is never passed again.
func (c *Checker) Passes(j int, vd Verdict) bool {
	col := c.byIndex[j]
	if col == nil {
		return true
	}
	if vd.failed != 0 || vd.notNumeric != 0 || len(col.checks) > 64 {
		return false
	}
	for _, k := range col.checks {
		if k.kind == unique {
			return false
		}
	}
	return true
}

// PassMany counts n values of column j that pass (Passes) again, as n calls
// of Repeat would.
func (c *Checker) PassMany(j int, n int64) {
	if col := c.byIndex[j]; col != nil {
		for _, k := range col.checks {
			k.result.Checked += n
		}
	}
}

// Repeat counts value v of column j at row again, whose verdict (from
// ObserveValue) is vd: the same as ObserveValue, without checking again
// (a unique check still looks the value up: seen again, it fails).
func (c *Checker) Repeat(j int, row int64, v string, vd Verdict) {
	col := c.byIndex[j]
	if col == nil {
		return
	}
	if len(col.checks) > 64 {
		c.observeValue(col, row, v)
		return
	}
	for i, k := range col.checks {
		switch k.kind {
		case notNull, maxNullFraction:
			k.result.Checked++
			continue
		case unique:
			k.result.Checked++
			c.checkUnique(k, row, v)
			continue
		}
		k.result.Checked++
		if vd.notNumeric&(1<<i) != 0 {
			k.notNumeric++
		}
		if vd.failed&(1<<i) != 0 {
			k.fail(row)
		}
	}
}

func (c *Checker) observeNull(col *column, row int64) {
	for _, k := range col.checks {
		if k.kind == notNull || k.kind == maxNullFraction {
			k.result.Checked++
			k.fail(row)
		}
	}
}

func (c *Checker) observeValue(col *column, row int64, v string) Verdict {
	var vd Verdict
	var num float64
	numeric, parsed := false, false
	for i, k := range col.checks {
		k.result.Checked++
		failed, notNumeric := false, false
		switch k.kind {
		case minValue, maxValue:
			if !parsed {
				num, numeric = tabular.ParseFloat(v)
				parsed = true
			}
			switch {
			case !numeric:
				k.notNumeric++
				failed, notNumeric = true, true
			// Written so that NaN fails both bounds.
			case k.kind == minValue && !(num >= k.bound), k.kind == maxValue && !(num <= k.bound):
				failed = true
			}
		case allowed:
			_, ok := k.allowed[v]
			failed = !ok
		case pattern:
			failed = !k.re.MatchString(v)
		case unique:
			c.checkUnique(k, row, v)
		case isType:
			ok := false
			if k.typ == tabular.Int || k.typ == tabular.Float {
				if !parsed {
					num, numeric = tabular.ParseFloat(v)
					parsed = true
				}
				ok = numeric
			} else {
				ok = k.typ.Accepts(v)
			}
			failed = !ok
		}
		if failed {
			k.fail(row)
		}
		if i < 64 { // Repeat checks again past the 64 bits
			bit := uint64(1) << i
			if failed {
				vd.failed |= bit
			}
			if notNumeric {
				vd.notNumeric |= bit
			}
		}
	}
	return vd
}

func (c *Checker) checkUnique(k *check, row int64, v string) {
	h := maphash.String(c.seed, v)
	switch {
	case k.seen.n < UniqueLimit:
		if !k.seen.add(h) {
			k.fail(row)
		}
	case k.seen.contains(h):
		k.fail(row)
	default:
		k.full = true
	}
}

// Report is the outcome so far; call it after the last record.
func (c *Checker) Report() Report {
	rep := Report{Passed: true, Rows: c.rows, Rules: []RuleResult{}}
	results := make([]RuleResult, 0, len(c.checks)+2*len(c.rowChecks))
	for _, k := range c.checks {
		results = append(results, c.result(k))
	}
	for _, rc := range c.rowChecks {
		if rc.min > 0 {
			r := RuleResult{Rule: "minRows " + strconv.FormatInt(rc.min, 10), Index: rc.index, Checked: c.rows, Passed: c.rows >= rc.min}
			if !r.Passed {
				r.Detail = fmt.Sprintf("%d rows, want at least %d", c.rows, rc.min)
			}
			results = append(results, r)
		}
		if rc.max > 0 {
			r := RuleResult{Rule: "maxRows " + strconv.FormatInt(rc.max, 10), Index: rc.index, Checked: c.rows, Passed: c.rows <= rc.max}
			if !r.Passed {
				r.Detail = fmt.Sprintf("%d rows, want at most %d", c.rows, rc.max)
			}
			results = append(results, r)
		}
	}
	// Row-count results go where their rule is in the list.
	slices.SortStableFunc(results, func(a, b RuleResult) int { return a.Index - b.Index })
	rep.Rules = append(rep.Rules, results...)
	for _, r := range rep.Rules {
		rep.Passed = rep.Passed && r.Passed
	}
	for _, k := range c.schemaChecks {
		if r := c.result(k); !r.Passed {
			rep.SchemaViolations = append(rep.SchemaViolations, r)
			rep.Passed = false
		}
	}
	return rep
}

func (c *Checker) result(k *check) RuleResult {
	r := k.result
	r.Rows = slices.Clone(r.Rows)
	r.Passed = r.Failed == 0
	switch {
	case k.absent:
		r.Passed, r.Detail = false, "column not in the data"
		return r
	case k.kind == missingColumn:
		r.Passed = false
		return r
	}
	switch k.kind {
	case maxNullFraction:
		fraction := 0.0
		if r.Checked > 0 {
			fraction = float64(r.Failed) / float64(r.Checked)
		}
		r.Passed = fraction <= k.bound
		r.Detail = fmt.Sprintf("null fraction %.4g (%d of %d rows)", fraction, r.Failed, r.Checked)
	case minValue, maxValue:
		if k.notNumeric > 0 {
			r.Detail = values(k.notNumeric, "is not a number", "are not numbers")
		}
	case isType:
		if r.Failed > 0 {
			r.Detail = values(r.Failed, "is not of type "+string(k.typ), "are not of type "+string(k.typ))
		}
	case unique:
		if k.full {
			r.Detail = fmt.Sprintf("more than %d distinct values: later values were checked against the first %d only", UniqueLimit, UniqueLimit)
		}
	}
	return r
}

func values(n int64, one, many string) string {
	if n == 1 {
		return "1 value " + one
	}
	return fmt.Sprintf("%d values %s", n, many)
}
