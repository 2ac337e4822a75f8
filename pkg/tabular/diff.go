package tabular

import (
	"fmt"
	"strings"
)

// How a column's type changed from the expected schema to the actual one.
const (
	// Widened: the actual values need a wider type (int -> float,
	// category -> string). Compatible: a model reading the expected type's
	// features reads these too.
	Widened = "widened"
	// Narrowed: every actual value is also a value of the expected type
	// (float -> int, string -> anything). Compatible.
	Narrowed = "narrowed"
	// Incompatible: values the expected type does not hold (int -> string,
	// bool -> timestamp ...).
	Incompatible = "incompatible"
)

// SchemaDiff is how an actual schema (of a new dataset version) differs from
// the expected one. Column order is not compared.
type SchemaDiff struct {
	// Added columns are compatible: they are reported and otherwise ignored.
	Added []SchemaColumn `json:"added,omitempty"`
	// Missing columns are incompatible.
	Missing     []SchemaColumn `json:"missing,omitempty"`
	TypeChanged []TypeChange   `json:"typeChanged,omitempty"`
	// NullableChanged names the columns the expected schema says are not
	// nullable and that now hold nulls: incompatible. The other way round
	// (no nulls in a nullable column) is no change.
	NullableChanged []string `json:"nullableChanged,omitempty"`
}

type TypeChange struct {
	Column string     `json:"column"`
	From   ColumnType `json:"from"`
	To     ColumnType `json:"to"`
	// Change is Widened, Narrowed or Incompatible.
	Change string `json:"change"`
}

// CompareSchemas reports how actual differs from expected.
func CompareSchemas(expected, actual Schema) SchemaDiff {
	var d SchemaDiff
	for _, e := range expected.Columns {
		a, ok := actual.Column(e.Name)
		if !ok {
			d.Missing = append(d.Missing, e)
			continue
		}
		if a.Type != e.Type {
			d.TypeChanged = append(d.TypeChanged, TypeChange{Column: e.Name, From: e.Type, To: a.Type, Change: typeChange(e.Type, a.Type)})
		}
		if !e.Nullable && a.Nullable {
			d.NullableChanged = append(d.NullableChanged, e.Name)
		}
	}
	for _, a := range actual.Columns {
		if _, ok := expected.Column(a.Name); !ok {
			d.Added = append(d.Added, a)
		}
	}
	return d
}

func typeChange(from, to ColumnType) string {
	switch {
	case from == Int && to == Float, from == Category && to == String:
		return Widened
	case from == String, from == Category, from == Float && to == Int:
		return Narrowed
	}
	return Incompatible
}

// Compatible reports whether data of the actual schema may be used where
// the expected one is: no column missing, no incompatible type change, no
// nulls where the expected schema allows none.
func (d SchemaDiff) Compatible() bool {
	if len(d.Missing) > 0 || len(d.NullableChanged) > 0 {
		return false
	}
	for _, c := range d.TypeChanged {
		if c.Change == Incompatible {
			return false
		}
	}
	return true
}

// Empty reports whether the schemas are the same.
func (d SchemaDiff) Empty() bool {
	return len(d.Added)+len(d.Missing)+len(d.TypeChanged)+len(d.NullableChanged) == 0
}

// String summarises the diff on one line for people:
// `added: zip; missing: age; income: int -> float (widened); now nullable: email`.
func (d SchemaDiff) String() string {
	var parts []string
	names := func(cols []SchemaColumn) string {
		s := make([]string, len(cols))
		for i, c := range cols {
			s[i] = c.Name
		}
		return strings.Join(s, ", ")
	}
	if len(d.Added) > 0 {
		parts = append(parts, "added: "+names(d.Added))
	}
	if len(d.Missing) > 0 {
		parts = append(parts, "missing: "+names(d.Missing))
	}
	for _, c := range d.TypeChanged {
		parts = append(parts, fmt.Sprintf("%s: %s -> %s (%s)", c.Column, c.From, c.To, c.Change))
	}
	if len(d.NullableChanged) > 0 {
		parts = append(parts, "now nullable: "+strings.Join(d.NullableChanged, ", "))
	}
	if len(parts) == 0 {
		return "no change"
	}
	return strings.Join(parts, "; ")
}
