package quality

import (
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/gyreml/gyre/pkg/pipeline"
	"github.com/gyreml/gyre/pkg/tabular"
)

func f64(v float64) *float64 { return &v }

// runChecker runs a checker over CSV data, read with the real reader.
func runChecker(t *testing.T, data string, schema tabular.Schema, rules []pipeline.Rule) Report {
	t.Helper()
	r, err := tabular.NewReader(strings.NewReader(data), tabular.CSV, tabular.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewChecker(r.Header(), schema, rules)
	if err != nil {
		t.Fatal(err)
	}
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return c.Report()
		}
		if err != nil {
			t.Fatal(err)
		}
		c.Observe(rec)
	}
}

const people = `id,age,income,country,email,phone,joined
1,25,1000,BR,a@x.io,,2024-01-01
2,17,,PT,b@x.io,555,2024-01-02
3,abc,2000,US,bad@x@y,,2024-01-03
4,130,3000,XX,a@x.io,556,yesterday
5,,4000,BR,c@x.io,557,2024-01-05
`

var peopleSchema = tabular.Schema{Columns: []tabular.SchemaColumn{
	{Name: "id", Type: tabular.Int},
	{Name: "age", Type: tabular.Int, Nullable: true},
	{Name: "income", Type: tabular.Float, Nullable: true},
	{Name: "country", Type: tabular.Category, Nullable: true},
	{Name: "email", Type: tabular.String, Nullable: true},
	{Name: "phone", Type: tabular.String, Nullable: true},
	{Name: "joined", Type: tabular.Timestamp, Nullable: true},
}}

var peopleRules = []pipeline.Rule{
	{Column: "age", Min: f64(18), Max: f64(120)},
	{Column: "income", NotNull: true},
	{Column: "country", Allowed: []string{"BR", "PT", "US"}},
	{Column: "email", Regex: `[^@]+@[^@]+`, Unique: true},
	{Column: "phone", MaxNullFraction: f64(0.3)},
	{MinRows: 10, MaxRows: 100},
}

func TestEveryRule(t *testing.T) {
	rep := runChecker(t, people, peopleSchema, peopleRules)
	want := Report{
		Passed: false,
		Rows:   5,
		Rules: []RuleResult{
			{Rule: "age: min 18", Index: 0, Column: "age", Checked: 4, Failed: 2, Rows: []int64{2, 3}, Detail: "1 value is not a number"},
			{Rule: "age: max 120", Index: 0, Column: "age", Checked: 4, Failed: 2, Rows: []int64{3, 4}, Detail: "1 value is not a number"},
			{Rule: "income: notNull", Index: 1, Column: "income", Checked: 5, Failed: 1, Rows: []int64{2}},
			{Rule: "country: allowed [BR, PT, US]", Index: 2, Column: "country", Checked: 5, Failed: 1, Rows: []int64{4}},
			// Full match: "bad@x@y" contains a match but is not one.
			{Rule: "email: regex [^@]+@[^@]+", Index: 3, Column: "email", Checked: 5, Failed: 1, Rows: []int64{3}},
			{Rule: "email: unique", Index: 3, Column: "email", Checked: 5, Failed: 1, Rows: []int64{4}},
			{Rule: "phone: maxNullFraction 0.3", Index: 4, Column: "phone", Checked: 5, Failed: 2, Rows: []int64{1, 3}, Detail: "null fraction 0.4 (2 of 5 rows)"},
			{Rule: "minRows 10", Index: 5, Checked: 5, Detail: "5 rows, want at least 10"},
			{Rule: "maxRows 100", Index: 5, Passed: true, Checked: 5},
		},
		SchemaViolations: []RuleResult{
			{Rule: "age: type int", Index: -1, Column: "age", Checked: 4, Failed: 1, Rows: []int64{3}, Detail: "1 value is not of type int"},
			{Rule: "joined: type timestamp", Index: -1, Column: "joined", Checked: 5, Failed: 1, Rows: []int64{4}, Detail: "1 value is not of type timestamp"},
		},
	}
	if !reflect.DeepEqual(rep, want) {
		got, _ := json.MarshalIndent(rep, "", "  ")
		exp, _ := json.MarshalIndent(want, "", "  ")
		t.Errorf("report\n%s\nwant\n%s", got, exp)
	}

	// The report holds counts and row numbers, never the values.
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	for _, value := range []string{"abc", "bad@x@y", "a@x.io", "XX", "yesterday", "130"} {
		if strings.Contains(string(b), value) {
			t.Errorf("report holds the value %q: %s", value, b)
		}
	}
}

func TestPassingReport(t *testing.T) {
	data := "id,age,score,ok\n1,30,0.5,true\n2,40.5,,false\n3,50,2,TRUE\n"
	schema := tabular.Schema{Columns: []tabular.SchemaColumn{
		{Name: "id", Type: tabular.Int},
		// An int column takes float values: int -> float is a compatible widening.
		{Name: "age", Type: tabular.Int},
		{Name: "score", Type: tabular.Float, Nullable: true},
		{Name: "ok", Type: tabular.Bool},
	}}
	rules := []pipeline.Rule{
		{Column: "id", Unique: true, NotNull: true},
		{Column: "age", Min: f64(18)},
		{Column: "score", MaxNullFraction: f64(0.5), Max: f64(2)},
		{MinRows: 3},
	}
	rep := runChecker(t, data, schema, rules)
	if !rep.Passed || len(rep.SchemaViolations) != 0 || len(rep.Rules) != 6 {
		t.Fatalf("report %+v", rep)
	}
	for _, r := range rep.Rules {
		// maxNullFraction counts the nulls as failed and passes below its bound.
		nulls := strings.Contains(r.Rule, "maxNullFraction")
		if !r.Passed || (r.Failed != 0) != nulls {
			t.Errorf("%s: %+v", r.Rule, r)
		}
	}
}

func TestSchemaViolations(t *testing.T) {
	data := "id,flag,extra\n1,yes,x\n,true,y\n"
	schema := tabular.Schema{Columns: []tabular.SchemaColumn{
		{Name: "id", Type: tabular.Int},
		{Name: "flag", Type: tabular.Bool, Nullable: true},
		{Name: "age", Type: tabular.Int, Nullable: true},
	}}
	rules := []pipeline.Rule{{Column: "age", Min: f64(0)}}
	rep := runChecker(t, data, schema, rules)
	want := []RuleResult{
		{Rule: "id: not nullable", Index: -1, Column: "id", Checked: 2, Failed: 1, Rows: []int64{2}},
		{Rule: "flag: type bool", Index: -1, Column: "flag", Checked: 2, Failed: 1, Rows: []int64{1}, Detail: "1 value is not of type bool"},
		{Rule: "age: present", Index: -1, Column: "age", Detail: "column in the schema but not in the data"},
	}
	if rep.Passed || !reflect.DeepEqual(rep.SchemaViolations, want) {
		t.Errorf("schema violations\n%+v\nwant\n%+v", rep.SchemaViolations, want)
	}
	// A rule on the missing column fails rather than passing vacuously.
	if r := rep.Rules[0]; r.Passed || r.Detail != "column not in the data" {
		t.Errorf("rule on a missing column: %+v", r)
	}
}

func TestRowsListIsBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString("x\n")
	for range 100 {
		b.WriteString("\n")
	}
	rep := runChecker(t, b.String(), tabular.Schema{}, []pipeline.Rule{{Column: "x", NotNull: true}})
	r := rep.Rules[0]
	if r.Failed != 100 || len(r.Rows) != MaxRows || r.Rows[9] != 10 {
		t.Errorf("result %+v", r)
	}
}

func TestUniqueManyValues(t *testing.T) {
	c, err := NewChecker([]string{"id"}, tabular.Schema{}, []pipeline.Rule{{Column: "id", Unique: true}})
	if err != nil {
		t.Fatal(err)
	}
	const n = 200_000
	values := []string{""}
	null := []bool{false}
	for i := range n {
		values[0] = fmt.Sprintf("user-%d", i)
		c.Observe(tabular.Record{Row: int64(i + 1), Values: values, Null: null})
	}
	values[0] = "user-123"
	c.Observe(tabular.Record{Row: n + 1, Values: values, Null: null})
	r := c.Report().Rules[0]
	if r.Checked != n+1 || r.Failed != 1 || r.Rows[0] != n+1 {
		t.Errorf("result %+v", r)
	}
}

func TestNaNFailsBounds(t *testing.T) {
	rep := runChecker(t, "x\nNaN\n5\n", tabular.Schema{}, []pipeline.Rule{{Column: "x", Min: f64(0), Max: f64(10)}})
	for _, r := range rep.Rules {
		if r.Failed != 1 || r.Rows[0] != 1 {
			t.Errorf("%s: %+v", r.Rule, r)
		}
	}
}

func TestNewCheckerErrors(t *testing.T) {
	header := []string{"age", "email"}
	for _, tc := range []struct {
		rules []pipeline.Rule
		want  string
	}{
		{[]pipeline.Rule{{Column: "age", Min: f64(0)}, {Column: "agee", NotNull: true}}, `rules[1].column: column "agee" is not in the data`},
		{[]pipeline.Rule{{Column: "email", Regex: "(unclosed"}}, "rules[0].regex: error parsing regexp: missing closing ): `^(?:(unclosed)$`"},
		{[]pipeline.Rule{{Column: "age"}}, `rules[0]: no check for column "age"`},
		{[]pipeline.Rule{{}}, "rules[0]: want a column with a check, or minRows/maxRows"},
	} {
		_, err := NewChecker(header, tabular.Schema{}, tc.rules)
		if err == nil || err.Error() != tc.want {
			t.Errorf("error %v, want %s", err, tc.want)
		}
	}
}

func TestSchemaFromSpec(t *testing.T) {
	no := false
	got := SchemaFromSpec(pipeline.Schema{Columns: []pipeline.Column{
		{Name: "id", Type: "int", Nullable: &no},
		{Name: "country", Type: "category"},
	}})
	want := tabular.Schema{Columns: []tabular.SchemaColumn{
		{Name: "id", Type: tabular.Int},
		{Name: "country", Type: tabular.Category, Nullable: true},
	}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("schema %+v, want %+v", got, want)
	}
}

func TestHashSet(t *testing.T) {
	var s hashSet
	const n, k = 100_000, 0x9E3779B97F4A7C15
	for i := uint64(1); i <= n; i++ {
		if !s.add(i * k) {
			t.Fatalf("%d: not new", i)
		}
	}
	for i := uint64(1); i <= n; i++ {
		if !s.contains(i*k) || s.add(i*k) {
			t.Fatalf("%d: lost", i)
		}
	}
	if s.contains(k/2) || s.n != n || len(s.slots) != 1<<18 {
		t.Errorf("%d entries in %d slots", s.n, len(s.slots))
	}
	// 0 marks an empty slot: the hash 0 is kept as 1.
	if !s.add(0) || !s.contains(1) || s.add(1) {
		t.Error("hash 0")
	}
}

// A column with more than 64 checks: each check counts its own failures
// (a verdict has 64 bits), by Observe and by ObserveValue then Repeat.
func TestManyChecksOnOneColumn(t *testing.T) {
	var rules []pipeline.Rule
	for range 33 {
		rules = append(rules, pipeline.Rule{Column: "x", NotNull: true, Min: f64(100)}, pipeline.Rule{Column: "x", Max: f64(1000)})
	}
	header := []string{"x"}
	byRecord, err := NewChecker(header, tabular.Schema{}, rules)
	if err != nil {
		t.Fatal(err)
	}
	byValue, _ := NewChecker(header, tabular.Schema{}, rules)
	vd := byValue.ObserveValue(0, 1, "5")
	byValue.Repeat(0, 2, "5", vd)
	byValue.AddRows(2)
	for row := int64(1); row <= 2; row++ {
		byRecord.Observe(tabular.Record{Row: row, Values: []string{"5"}, Null: []bool{false}})
	}
	for _, c := range []*Checker{byRecord, byValue} {
		rep := c.Report()
		for _, r := range rep.Rules {
			wantFailed := int64(0)
			if strings.Contains(r.Rule, "min") {
				wantFailed = 2
			}
			if r.Failed != wantFailed || r.Checked != 2 {
				t.Fatalf("%s: %d of %d failed, want %d of 2", r.Rule, r.Failed, r.Checked, wantFailed)
			}
		}
	}
}
