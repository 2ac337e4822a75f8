package tabular

import (
	"fmt"
	"reflect"
	"strconv"
	"testing"
	"time"
)

func TestInferrer(t *testing.T) {
	header := []string{"id", "score", "flag", "when", "name", "country", "empty", "mixed", "big"}
	in := NewInferrer(header)
	countries := []string{"BR", "PT", "US"}
	for i := range 100 {
		values := []string{
			strconv.Itoa(i),
			strconv.Itoa(i), // becomes float below
			[]string{"true", "FALSE"}[i%2],
			"2024-05-01",
			fmt.Sprintf("person %d", i),
			countries[i%3],
			"",
			strconv.Itoa(i),
			"9223372036854775807",
		}
		null := make([]bool, len(header))
		null[6] = true
		switch i {
		case 10:
			values[1] = "2.5"
			values[3] = "2024-05-01T10:00:00+02:00"
			values[8] = "9223372036854775808" // past int64
		case 11:
			values[3] = "2024-05-01 10:00:00.5"
			values[7] = "n/a"
		case 12:
			null[2], values[2] = true, ""
		}
		in.Observe(values, null)
	}
	want := Schema{Columns: []SchemaColumn{
		{"id", Int, false},
		{"score", Float, false},
		{"flag", Bool, true},
		{"when", Timestamp, false},
		{"name", String, false},
		{"country", Category, false},
		{"empty", String, true},
		{"mixed", String, false},
		{"big", Float, false},
	}}
	if got := in.Schema(); !reflect.DeepEqual(got, want) {
		t.Errorf("schema\n%+v\nwant\n%+v", got, want)
	}
}

func TestInferrerCategoryBounds(t *testing.T) {
	infer := func(rows, distinct int) ColumnType {
		in := NewInferrer([]string{"c"})
		for i := range rows {
			in.Observe([]string{fmt.Sprintf("v%d", i%distinct)}, nil)
		}
		return in.Schema().Columns[0].Type
	}
	for _, tc := range []struct {
		rows, distinct int
		want           ColumnType
	}{
		{1000, 50, Category}, // at the bound
		{1000, 51, String},   // more than 50 distinct
		{100, 20, Category},  // 20% of rows
		{100, 21, String},    // more than 20% of rows
		{4, 1, String},       // too few rows: 1 > 0.8
		{10000, 3, Category}, // large, few values
		{10000, 500, String}, // many values: tracking stops past the bound
	} {
		if got := infer(tc.rows, tc.distinct); got != tc.want {
			t.Errorf("%d rows, %d distinct: %s, want %s", tc.rows, tc.distinct, got, tc.want)
		}
	}
}

func TestValueParsing(t *testing.T) {
	for _, tc := range []struct {
		v                   string
		int, float, boolean bool
		timestamp           bool
	}{
		{"42", true, true, false, false},
		{"-7", true, true, false, false},
		{"1.5", false, true, false, false},
		{"1e3", false, true, false, false},
		{"NaN", false, true, false, false},
		{"-Inf", false, true, false, false},
		{"nan", false, false, false, false},
		{"infinity", false, false, false, false},
		{"0x1p3", false, false, false, false},
		{"1e400", false, false, false, false},
		{"True", false, false, true, false},
		{"false", false, false, true, false},
		{"yes", false, false, false, false},
		{"1", true, true, false, false},
		{"2024-05-01", false, false, false, true},
		{"2024-05-01T10:00:00Z", false, false, false, true},
		{"2024-05-01T10:00:00.123456789-03:00", false, false, false, true},
		{"2024-05-01 10:00:00", false, false, false, true},
		{"2024-13-01", false, false, false, false},
		{"2024-05-01T10:00:00", false, false, false, false},
		{"", false, false, false, false},
	} {
		_, f := ParseFloat(tc.v)
		_, b := ParseBool(tc.v)
		_, ts := ParseTimestamp(tc.v)
		if IsInt(tc.v) != tc.int || f != tc.float || b != tc.boolean || ts != tc.timestamp {
			t.Errorf("%q: int %v float %v bool %v timestamp %v", tc.v, IsInt(tc.v), f, b, ts)
		}
	}
	if !Int.Accepts("1.5") || Int.Accepts("abc") || !Category.Accepts("anything") || Timestamp.Accepts("1") {
		t.Error("Accepts")
	}
}

func TestCompareSchemas(t *testing.T) {
	expected := Schema{Columns: []SchemaColumn{
		{"id", Int, false},
		{"income", Int, true},
		{"score", Float, true},
		{"country", Category, true},
		{"email", String, false},
		{"age", Int, true},
		{"joined", Timestamp, true},
		{"code", String, true},
	}}
	actual := Schema{Columns: []SchemaColumn{
		{"zip", Category, false},
		{"id", Int, false},
		{"income", Float, true},
		{"score", Int, false},
		{"country", String, true},
		{"email", String, true},
		{"joined", String, true},
		{"code", Int, true},
	}}
	d := CompareSchemas(expected, actual)
	want := SchemaDiff{
		Added:   []SchemaColumn{{"zip", Category, false}},
		Missing: []SchemaColumn{{"age", Int, true}},
		TypeChanged: []TypeChange{
			{"income", Int, Float, Widened},
			{"score", Float, Int, Narrowed},
			{"country", Category, String, Widened},
			{"joined", Timestamp, String, Incompatible},
			{"code", String, Int, Narrowed},
		},
		NullableChanged: []string{"email"},
	}
	if !reflect.DeepEqual(d, want) {
		t.Errorf("diff\n%+v\nwant\n%+v", d, want)
	}
	if d.Compatible() || d.Empty() {
		t.Error("diff is compatible or empty")
	}
	const summary = "added: zip; missing: age; income: int -> float (widened); score: float -> int (narrowed); " +
		"country: category -> string (widened); joined: timestamp -> string (incompatible); code: string -> int (narrowed); now nullable: email"
	if d.String() != summary {
		t.Errorf("summary\n%s\nwant\n%s", d, summary)
	}

	for _, tc := range []struct {
		name       string
		diff       SchemaDiff
		compatible bool
	}{
		{"same", CompareSchemas(expected, expected), true},
		{"added and widened", SchemaDiff{Added: want.Added, TypeChanged: want.TypeChanged[:3]}, true},
		{"missing", SchemaDiff{Missing: want.Missing}, false},
		{"incompatible type", SchemaDiff{TypeChanged: want.TypeChanged[3:4]}, false},
		{"now nullable", SchemaDiff{NullableChanged: want.NullableChanged}, false},
	} {
		if tc.diff.Compatible() != tc.compatible {
			t.Errorf("%s: compatible %v", tc.name, !tc.compatible)
		}
	}
	if same := CompareSchemas(expected, expected); !same.Empty() || same.String() != "no change" {
		t.Errorf("same schema: %s", same)
	}
}

// The date-only fast path must agree with time.Parse on every date shape,
// valid or not.
func TestParseTimestampDateOnly(t *testing.T) {
	cases := []string{"0000-01-01", "9999-12-31", "+024-01-01", "-024-01-01", "2024/01-01", "2024-01/01", "2024-1-011", "2024-01-1x"}
	for _, y := range []int{1900, 1999, 2000, 2023, 2024} {
		for m := 0; m <= 13; m++ {
			for d := 0; d <= 32; d++ {
				cases = append(cases, fmt.Sprintf("%04d-%02d-%02d", y, m, d))
			}
		}
	}
	for _, c := range cases {
		want, err := time.Parse(time.DateOnly, c)
		got, ok := ParseTimestamp(c)
		if ok != (err == nil) || got != want {
			t.Errorf("ParseTimestamp(%q) = %v, %v; time.Parse gives %v, %v", c, got, ok, want, err)
		}
	}
}

// The plain-decimal fast paths must agree with strconv on every shape.
func TestNumberFastPaths(t *testing.T) {
	cases := []string{"", "+", "-", ".", "+.", "-.", "0", "-0", "+0", "5.", ".5", "-.5", "1.2.3", "1..2", "1e5", "1.5e", "1.e", "1x", "x1", "0x1p-2", "0X10",
		"--5", "+-5", "1_000", "NaN", "Inf", "-Inf", "inf", " 1", "1 ", "123456789012345678", "1234567890123456789", "9223372036854775807",
		"9223372036854775808", "-9223372036854775808", "-9223372036854775809", "00000000000000000000001", "1.7976931348623157e308", "1e309"}
	for _, c := range cases {
		_, err := strconv.ParseInt(c, 10, 64)
		if got := IsInt(c); got != (err == nil) {
			t.Errorf("IsInt(%q) = %v, strconv says %v", c, got, err)
		}
		_, ok := ParseFloat(c)
		if got := isFloat(c); got != ok {
			t.Errorf("isFloat(%q) = %v, ParseFloat says %v", c, got, ok)
		}
	}
}

// isTimestamp must agree with ParseTimestamp on every value: it only
// answers the common forms faster.
func TestIsTimestampAgreesWithParseTimestamp(t *testing.T) {
	cases := []string{
		"2024-05-01", "2024-02-29", "2023-02-29", "1900-02-29", "2000-02-29", "2024-04-31", "2024-13-01", "2024-00-10", "2024-01-00",
		"2024-05-01T10:00:00Z", "2024-05-01T23:59:59Z", "2024-05-01T24:00:00Z", "2024-05-01T10:60:00Z", "2024-05-01T10:00:60Z",
		"2024-05-01T10:00:00.5Z", "2024-05-01T10:00:00.123456789Z", "2024-05-01T10:00:00.1234567890Z", "2024-05-01T10:00:00.Z",
		"2024-05-01T10:00:00+05:30", "2024-05-01T10:00:00-23:59", "2024-05-01T10:00:00+24:00", "2024-05-01T10:00:00+05:60",
		"2024-05-01T10:00:00", "2024-05-01 10:00:00", "2024-05-01 10:00:00.25", "2024-05-01t10:00:00z", "2024-05-01T10:00:00z",
		"2024-05-01T10:00Z", "2024-05-01T1:00:00Z", "2024-05-01T10:00:00+0530", "2024-05-01T10:00:00 Z", "2024-5-01",
		"+024-05-01", "2024-05-01x", "12345678901", "", "2024-05-01T10:00:00.123+05:30", "9999-12-31T23:59:59Z", "0000-01-01",
	}
	for _, v := range cases {
		_, want := ParseTimestamp(v)
		if got := isTimestamp(v); got != want {
			t.Errorf("isTimestamp(%q) = %v, ParseTimestamp says %v", v, got, want)
		}
	}
}

// TestInferrerObserveValuesMatchesObserve infers the same columns a column
// at a time: the schema is the one of inferring row by row.
func TestInferrerObserveValuesMatchesObserve(t *testing.T) {
	header := []string{"id", "score", "flag", "when", "country", "mixed"}
	rows, byRow, byColumn := [][]string{}, NewInferrer(header), NewInferrer(header)
	for i := range 300 {
		row := []string{strconv.Itoa(i), strconv.Itoa(i), "true", "2024-05-01", []string{"BR", "PT"}[i%2], strconv.Itoa(i)}
		if i == 200 {
			row[1], row[2], row[3], row[5] = "2.5", "maybe", "2024-05-01T10:00:00Z", "n/a"
		}
		rows = append(rows, row)
		byRow.Observe(row, nil)
	}
	for j := range header {
		var values []string
		for _, r := range rows {
			values = append(values, r[j])
		}
		byColumn.ObserveValues(j, values[:150])
		byColumn.ObserveValues(j, values[150:])
	}
	if got, want := byColumn.Schema(), byRow.Schema(); !reflect.DeepEqual(got, want) {
		t.Errorf("by column %+v\nby row %+v", got, want)
	}
}
