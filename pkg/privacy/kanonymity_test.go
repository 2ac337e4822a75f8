package privacy

import (
	"hash/maphash"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

func TestKAnonymity(t *testing.T) {
	columns := []string{"id", "zip", "age", "sex", "diagnosis"}
	k, err := NewKAnonymity(columns, []string{"zip", "age", "sex"})
	if err != nil {
		t.Fatal(err)
	}
	rows := []struct {
		values []string
		null   []bool
	}{
		{[]string{"1", "02139", "30", "F", "flu"}, nil},
		{[]string{"2", "02139", "30", "F", "cold"}, nil},
		{[]string{"3", "02139", "30", "F", "flu"}, nil},
		{[]string{"4", "02139", "40", "M", "flu"}, nil},
		{[]string{"5", "02139", "40", "M", "asthma"}, nil},
		{[]string{"6", "02141", "30", "F", "flu"}, nil},
		{[]string{"7", "02141", "", "F", "flu"}, []bool{false, false, true, false, false}}, // null age
		{[]string{"8", "02141", "", "F", "cold"}, nil},                                     // empty age: another class
		{[]string{"9", "02139", "30", "F", "cold"}, nil},
	}
	for _, r := range rows {
		k.Observe(r.values, r.null)
	}
	// Classes, by hand: (02139,30,F) x4, (02139,40,M) x2, (02141,30,F) x1,
	// (02141,null,F) x1, (02141,"",F) x1.
	got := k.Result()
	if got.Rows != 9 || got.Classes != 5 || got.SmallestClass != 1 || got.Untracked != 0 {
		t.Fatalf("result = %+v", got)
	}
	for _, c := range []struct {
		k                       int
		classesBelow, rowsBelow int64
		satisfies               bool
	}{
		{1, 0, 0, true},
		{2, 3, 3, false},
		{3, 4, 5, false},
		{5, 5, 9, false},
	} {
		if n := got.ClassesBelow(c.k); n != c.classesBelow {
			t.Errorf("ClassesBelow(%d) = %d, want %d", c.k, n, c.classesBelow)
		}
		if n := got.RowsBelow(c.k); n != c.rowsBelow {
			t.Errorf("RowsBelow(%d) = %d, want %d", c.k, n, c.rowsBelow)
		}
		if s := got.Satisfies(c.k); s != c.satisfies {
			t.Errorf("Satisfies(%d) = %v, want %v", c.k, s, c.satisfies)
		}
	}
}

func TestKAnonymityKeepsFieldsApart(t *testing.T) {
	k, err := NewKAnonymity([]string{"a", "b"}, []string{"a", "b"})
	if err != nil {
		t.Fatal(err)
	}
	k.Observe([]string{"ab", "c"}, nil)
	k.Observe([]string{"a", "bc"}, nil)
	if r := k.Result(); r.Classes != 2 || r.SmallestClass != 1 {
		t.Errorf("(ab,c) and (a,bc) share a class: %+v", r)
	}
}

func TestKAnonymityEmpty(t *testing.T) {
	k, err := NewKAnonymity([]string{"a"}, []string{"a"})
	if err != nil {
		t.Fatal(err)
	}
	if r := k.Result(); r.Rows != 0 || r.Classes != 0 || r.SmallestClass != 0 || !r.Satisfies(5) {
		t.Errorf("empty result = %+v", r)
	}
}

func TestNewKAnonymityErrors(t *testing.T) {
	for _, c := range []struct {
		qis  []string
		want string
	}{
		{nil, "no quasi-identifiers"},
		{[]string{"zip", "income"}, `quasi-identifier "income" is not a column`},
		{[]string{"zip", "zip"}, `"zip" given twice`},
	} {
		_, err := NewKAnonymity([]string{"zip", "age"}, c.qis)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewKAnonymity(%v) = %v, want an error with %q", c.qis, err, c.want)
		}
	}
}

func TestKAnonymityBoundsMemory(t *testing.T) {
	k, err := NewKAnonymity([]string{"zip"}, []string{"zip"})
	if err != nil {
		t.Fatal(err)
	}
	k.maxClasses = 2
	for _, zip := range []string{"1", "2", "3", "1", "4", "2"} {
		k.Observe([]string{zip}, nil)
	}
	r := k.Result()
	if r.Rows != 6 || r.Classes != 2 || r.Untracked != 2 || r.SmallestClass != 2 || r.Satisfies(2) {
		t.Errorf("capped result = %+v, Satisfies(2) = %v; want rows of new classes untracked and failing", r, r.Satisfies(2))
	}
}

// ObserveHashColumns, given one hash per value, a column at a time in
// chunks of uneven length, finds the classes Observe finds.
func TestKAnonymityObserveHashColumnsMatchesObserve(t *testing.T) {
	cols := []string{"zip", "age", "sex"}
	byValue, _ := NewKAnonymity(cols, cols)
	byHash, _ := NewKAnonymity(cols, cols)
	seed := maphash.MakeSeed()
	rng := rand.New(rand.NewPCG(1, 1))
	for rows := 0; rows < 20_000; {
		n := 1 + rng.IntN(700) // across the 256-row flushes
		hashes, nulls := make([][]uint64, len(cols)), make([][]bool, len(cols))
		for range n {
			row := []string{strconv.Itoa(rng.IntN(30)), strconv.Itoa(rng.IntN(9)), []string{"f", "m", ""}[rng.IntN(3)]}
			null := []bool{rng.IntN(50) == 0, false, rng.IntN(40) == 0}
			byValue.Observe(row, null)
			for q, v := range row {
				hashes[q], nulls[q] = append(hashes[q], maphash.String(seed, v)), append(nulls[q], null[q])
			}
		}
		byHash.ObserveHashColumns(hashes, nulls)
		rows += n
	}
	a, b := byValue.Result(), byHash.Result()
	if a.Rows != b.Rows || a.Classes != b.Classes || a.SmallestClass != b.SmallestClass || a.RowsBelow(20) != b.RowsBelow(20) {
		t.Fatalf("by hash %+v, by value %+v", b, a)
	}
}
