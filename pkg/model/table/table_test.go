package table

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/gyreml/gyre/pkg/model"
)

func read(t *testing.T, csv string, kinds map[string]model.Kind) *Table {
	t.Helper()
	tb, err := ReadCSV(strings.NewReader(csv), kinds)
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

func TestReadCSVInfersKinds(t *testing.T) {
	tb := read(t, "x,zip,c,n\n1.5,007,a,NaN\n,12,\"\",1\n-2,AB1,b,\n", nil)
	if tb.Rows != 3 {
		t.Fatalf("rows = %d, want 3", tb.Rows)
	}
	x, _ := tb.Column("x")
	if x.Kind != model.Numeric || x.F[0] != 1.5 || !x.Null[1] || !math.IsNaN(x.F[1]) || x.F[2] != -2 {
		t.Errorf("x = %+v", x)
	}
	// A column that turns categorical gets its numbers back as written.
	zip, _ := tb.Column("zip")
	if zip.Kind != model.Categorical || !slices.Equal(zip.S, []string{"007", "12", "AB1"}) {
		t.Errorf("zip = %+v", zip)
	}
	// The empty string is missing, like null.
	c, _ := tb.Column("c")
	if c.Kind != model.Categorical || !slices.Equal(c.Null, []bool{false, true, false}) || c.S[1] != "" {
		t.Errorf("c = %+v", c)
	}
	// "NaN" in a numeric column is a missing number.
	n, _ := tb.Column("n")
	if n.Kind != model.Numeric || !slices.Equal(n.Null, []bool{true, false, true}) {
		t.Errorf("n = %+v", n)
	}
	if got := n.Text(1); got != "1" {
		t.Errorf("n.Text(1) = %q, want 1", got)
	}
}

func TestReadCSVKinds(t *testing.T) {
	tb := read(t, "a,b\n1,2\n3,4\n", map[string]model.Kind{"a": model.Categorical})
	a, _ := tb.Column("a")
	b, _ := tb.Column("b")
	if a.Kind != model.Categorical || a.S[1] != "3" || b.Kind != model.Numeric || b.F[1] != 4 {
		t.Errorf("a = %+v, b = %+v", a, b)
	}
	_, err := ReadCSV(strings.NewReader("a,b\n1,2\nx,4\n"), map[string]model.Kind{"a": model.Numeric})
	if err == nil || !strings.Contains(err.Error(), `line 3, column "a"`) {
		t.Errorf("not a number: err = %v, want it to name line 3 and column a", err)
	}
	_, err = ReadCSV(strings.NewReader("a,b\n1,2\n"), map[string]model.Kind{"c": model.Numeric})
	if err == nil || !strings.Contains(err.Error(), `"c"`) {
		t.Errorf("unknown column: err = %v", err)
	}
}

func TestModelRowsAndSelect(t *testing.T) {
	tb := read(t, "x,c,y\n1,a,0\n,b,1\n3,,1\n", nil)
	inputs := []model.Input{{Name: "c", Kind: model.Categorical}, {Name: "x", Kind: model.Numeric}, {Name: "y", Kind: model.Categorical}}
	rows, err := tb.ModelRows(inputs, []int{2, 1})
	if err != nil {
		t.Fatal(err)
	}
	want := []model.Row{
		{{Null: true}, {F: 3}, {S: "1"}},
		{{S: "b"}, {Null: true}, {S: "1"}},
	}
	if fmt.Sprint(rows) != fmt.Sprint(want) {
		t.Errorf("rows = %v, want %v", rows, want)
	}
	if _, err := tb.ModelRows([]model.Input{{Name: "c", Kind: model.Numeric}}, nil); err == nil {
		t.Error("a numeric input over a categorical column: no error")
	}
	if _, err := tb.ModelRows([]model.Input{{Name: "nope", Kind: model.Numeric}}, nil); err == nil {
		t.Error("a missing column: no error")
	}
	sel := tb.Select([]int{2, 0})
	y, _ := sel.Column("y")
	if sel.Rows != 2 || y.F[0] != 1 || y.F[1] != 0 {
		t.Errorf("select: %+v", y)
	}
	if got := y.Classes(nil); !slices.Equal(got, []string{"0", "1"}) {
		t.Errorf("classes = %v", got)
	}
}

// genCSV writes n rows: a numeric feature, a category, and a label with
// class shares 70/20/10.
func genCSV(n int, seed uint64) (string, []string) {
	r := rand.New(rand.NewPCG(seed, 1))
	var b strings.Builder
	b.WriteString("id,x,cat,label\n")
	lines := make([]string, n)
	for i := range n {
		label := "a"
		switch u := r.Float64(); {
		case u > 0.9:
			label = "c"
		case u > 0.7:
			label = "b"
		}
		lines[i] = fmt.Sprintf("%d,%.4f,k%d,%s\n", i, r.NormFloat64(), r.IntN(5), label)
		b.WriteString(lines[i])
	}
	return b.String(), lines
}

// heldLines is the content of the held-out rows, sorted.
func heldLines(lines []string, holdout []int) []string {
	var out []string
	for _, i := range holdout {
		out = append(out, lines[i])
	}
	slices.Sort(out)
	return out
}

func TestSplitDeterministicAndIndexFree(t *testing.T) {
	csv, lines := genCSV(5000, 7)
	tb := read(t, csv, nil)
	for _, stratify := range []bool{false, true} {
		spec := SplitSpec{Holdout: 0.2, Seed: 42, Stratify: stratify, Target: "label"}
		train, holdout, err := Split(tb, spec)
		if err != nil {
			t.Fatal(err)
		}
		if len(train)+len(holdout) != tb.Rows {
			t.Fatalf("stratify=%v: %d + %d rows, want %d", stratify, len(train), len(holdout), tb.Rows)
		}
		_, again, _ := Split(tb, spec)
		if !slices.Equal(holdout, again) {
			t.Errorf("stratify=%v: two splits of the same table differ", stratify)
		}

		// The same rows in another order: the same rows are held out.
		perm := rand.New(rand.NewPCG(3, 3)).Perm(len(lines))
		shuffled := make([]string, len(lines))
		for i, p := range perm {
			shuffled[i] = lines[p]
		}
		tb2 := read(t, "id,x,cat,label\n"+strings.Join(shuffled, ""), nil)
		_, holdout2, err := Split(tb2, spec)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(heldLines(lines, holdout), heldLines(shuffled, holdout2)) {
			t.Errorf("stratify=%v: shuffling the rows changed which rows are held out", stratify)
		}

		spec.Seed = 43
		_, other, _ := Split(tb, spec)
		if slices.Equal(holdout, other) {
			t.Errorf("stratify=%v: another seed gives the same split", stratify)
		}
	}
}

func TestSplitShares(t *testing.T) {
	csv, _ := genCSV(10000, 9)
	tb := read(t, csv, nil)
	_, holdout, err := Split(tb, SplitSpec{Holdout: 0.25, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	// Binomial: sd = sqrt(10000 × .25 × .75) ≈ 43; allow about 5 sd.
	if n := len(holdout); n < 2280 || n > 2720 {
		t.Errorf("unstratified holdout has %d rows, want about 2500", n)
	}

	label, _ := tb.Column("label")
	for _, h := range []float64{0.1, 0.25, 0.33} {
		_, holdout, err := Split(tb, SplitSpec{Holdout: h, Seed: 5, Stratify: true, Target: "label"})
		if err != nil {
			t.Fatal(err)
		}
		total, held := map[string]int{}, map[string]int{}
		for i := range tb.Rows {
			total[label.S[i]]++
		}
		for _, i := range holdout {
			held[label.S[i]]++
		}
		for class, n := range total {
			if want := h * float64(n); math.Abs(float64(held[class])-want) > 1 {
				t.Errorf("holdout %v: class %s holds out %d of %d, want %.1f ± 1", h, class, held[class], n, want)
			}
		}
	}
}

func TestSplitErrors(t *testing.T) {
	tb := read(t, "x,y\n1,a\n", nil)
	for _, s := range []SplitSpec{{Holdout: 1}, {Holdout: -0.1}, {Holdout: math.NaN()}, {Holdout: 0.2, Stratify: true}, {Holdout: 0.2, Stratify: true, Target: "z"}} {
		if _, _, err := Split(tb, s); err == nil {
			t.Errorf("Split(%+v): no error", s)
		}
	}
}

// The row hash is part of the stored contract: the evaluator must rebuild a
// holdout made by an older worker, so these values never change.
func TestRowHashesPinned(t *testing.T) {
	tb := read(t, "x,c\n1.5,a\n,b\n-0,\n0,\n", nil)
	got := RowHashes(tb, 42)
	if got[2] != got[3] {
		t.Errorf("-0 and 0 hash differently")
	}
	want := []uint64{0x746d2f18b671f707, 0x109e9e457bdc6801, 0x3ce1431d6aaf98b1, 0x3ce1431d6aaf98b1}
	if !slices.Equal(got, want) {
		t.Errorf("RowHashes = %#v, want %#v", got, want)
	}
}
