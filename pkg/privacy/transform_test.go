package privacy

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
	"testing"
)

var testKey = []byte("0123456789abcdef-test-key")

// wantPseudonym computes a pseudonym from its definition.
func wantPseudonym(key []byte, canonical string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(canonical))
	return "pse_" + hex.EncodeToString(m.Sum(nil))[:20]
}

var transformColumns = []string{"id", "first_name", "card", "email", "notes", "phone", "ip"}

var transformFlagged = map[string][]string{
	"first_name": {NameHint},
	"card":       {Card},
	"email":      {Email, NameHint},
	"notes":      {Email, Phone},
	"phone":      {Phone},
	"ip":         {IPAddress},
}

func newTransformer(t *testing.T, action Action, key []byte) *Transformer {
	t.Helper()
	tr, err := NewTransformer(action, key, transformColumns, transformFlagged)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestRedact(t *testing.T) {
	tr := newTransformer(t, Redact, nil)
	row := []string{
		"42",
		"Ana",
		" 4111 1111 1111 1111 ",
		"ana@example.com",
		"Wrote from ana@example.com; call +1 650-253-0000 or (650) 253-0000 after 5.",
		"6502530000",
		"10.1.2.3",
	}
	tr.Apply(row, nil)
	want := []string{
		"42",
		Redacted,
		Redacted,
		Redacted,
		"Wrote from [EMAIL]; call [PHONE] or [PHONE] after 5.",
		Redacted,
		Redacted,
	}
	if !slices.Equal(row, want) {
		t.Errorf("redacted row:\n got %q\nwant %q", row, want)
	}
}

func TestRedactKeepsNullsAndCleanValues(t *testing.T) {
	tr := newTransformer(t, Redact, nil)
	row := []string{"42", "Ana", "", "x", "all good, no contact data", "unknown", "n/a"}
	null := []bool{false, true, false, false, false, false, false}
	tr.Apply(row, null)
	want := []string{"42", "Ana", "", Redacted, "all good, no contact data", "unknown", "n/a"}
	if !slices.Equal(row, want) {
		t.Errorf("row:\n got %q\nwant %q", row, want)
	}
}

func TestRedactMistypedMatchesInFlaggedColumns(t *testing.T) {
	// Once a column is known to hold cards, a number that fails Luhn is a
	// mistyped card, not an order number.
	tr := newTransformer(t, Redact, nil)
	row := []string{"1", "Ana", "4111 1111 1111 1112", "", "mail bob@localhost", "", "256.1.1.1"}
	tr.Apply(row, nil)
	want := []string{"1", Redacted, Redacted, "", "mail [EMAIL]", "", Redacted}
	if !slices.Equal(row, want) {
		t.Errorf("row:\n got %q\nwant %q", row, want)
	}
}

func TestPseudonymize(t *testing.T) {
	tr := newTransformer(t, Pseudonymize, testKey)
	row := []string{
		"42",
		" Ana ",
		"4111 1111 1111 1111",
		"Ana@Example.com",
		"from ana@example.com, tel (650) 253-0000",
		"+1 650-253-0000",
		"2001:DB8:0:0::1",
	}
	tr.Apply(row, nil)
	want := []string{
		"42",
		wantPseudonym(testKey, "Ana"),
		wantPseudonym(testKey, "4111111111111111"),
		wantPseudonym(testKey, "Ana@Example.com"), // a name_hint column: the whole raw value
		"from " + wantPseudonym(testKey, "ana@example.com") + ", tel " + wantPseudonym(testKey, "+16502530000"),
		wantPseudonym(testKey, "+16502530000"),
		wantPseudonym(testKey, "2001:db8::1"),
	}
	if !slices.Equal(row, want) {
		t.Errorf("pseudonymized row:\n got %q\nwant %q", row, want)
	}
}

func TestPseudonymsAreStable(t *testing.T) {
	// The same key gives the same pseudonym in every run (and so in every
	// dataset version), however the value was written; another key does not.
	pseudonymize := func(key []byte, values ...string) []string {
		tr, err := NewTransformer(Pseudonymize, key, []string{"card"}, map[string][]string{"card": {Card}})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, v := range values {
			row := []string{v}
			tr.Apply(row, nil)
			out = append(out, row[0])
		}
		return out
	}
	a := pseudonymize(testKey, "4111111111111111", "4111-1111-1111-1111", "4111 1111 1111 1111")
	b := pseudonymize(slices.Clone(testKey), "4111111111111111")
	c := pseudonymize([]byte("another-key-of-16+bytes"), "4111111111111111")
	if a[0] != a[1] || a[1] != a[2] || a[0] != b[0] {
		t.Errorf("pseudonyms differ for one card and one key: %v %v", a, b)
	}
	if a[0] == c[0] {
		t.Errorf("two keys give the same pseudonym %s", a[0])
	}
	if len(a[0]) != len("pse_")+20 || !strings.HasPrefix(a[0], "pse_") {
		t.Errorf("pseudonym %q is not pse_ and 20 hex digits", a[0])
	}
	// Pinned: a change here breaks joins with every version already stored.
	if want := "pse_" + hex.EncodeToString(hmacSum(testKey, "4111111111111111"))[:20]; a[0] != want {
		t.Errorf("pseudonym = %s, want %s", a[0], want)
	}
}

func hmacSum(key []byte, s string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(s))
	return m.Sum(nil)
}

func TestNewTransformerErrors(t *testing.T) {
	cols := []string{"a", "b"}
	for _, c := range []struct {
		action  Action
		key     []byte
		flagged map[string][]string
		opts    []TransformOption
		want    string
	}{
		{Reject, testKey, nil, nil, "reject"},
		{"scramble", testKey, nil, nil, `unknown action "scramble"`},
		{Pseudonymize, []byte("short"), nil, nil, "at least 16 bytes"},
		{Redact, nil, map[string][]string{"c": {Email}}, nil, `flagged column "c"`},
		{Redact, nil, map[string][]string{"a": {"passport"}}, nil, `unknown detector "passport"`},
		{Redact, nil, nil, []TransformOption{WithDefaultRegion("XX")}, `unknown phone region "XX"`},
	} {
		_, err := NewTransformer(c.action, c.key, cols, c.flagged, c.opts...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewTransformer(%q, %v) = %v, want an error with %q", c.action, c.flagged, err, c.want)
		}
	}
}

func TestTransformerRegion(t *testing.T) {
	tr, err := NewTransformer(Redact, nil, []string{"notes"}, map[string][]string{"notes": {Phone}}, WithDefaultRegion("GB"))
	if err != nil {
		t.Fatal(err)
	}
	row := []string{"ring 020 7946 0958 today"}
	tr.Apply(row, nil)
	if row[0] != "ring [PHONE] today" {
		t.Errorf("UK number with region GB: %q", row[0])
	}
}

func TestScanThenTransform(t *testing.T) {
	// The ingestion's flow: a first pass decides the columns, a second cleans.
	columns := []string{"id", "notes", "card"}
	rows := [][]string{
		{"1", "ok", "4111 1111 1111 1111"},
		{"2", "email me: ana@example.com", "5555 5555 5555 4444"},
		{"3", "or bob@example.org", "3782 822463 10005"},
		{"4", "cc carol@example.net", "6011 1111 1111 1117"},
	}
	s, err := NewScanner(columns, Config{Detect: Detectors})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range rows {
		s.Observe(int64(i+1), r, nil)
	}
	flagged := FlaggedColumns(s.Findings())
	if len(flagged) != 2 || flagged["notes"][0] != Email || flagged["card"][0] != Card {
		t.Fatalf("flagged = %v", flagged)
	}
	tr, err := NewTransformer(Redact, nil, columns, flagged)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		tr.Apply(r, nil)
	}
	want := [][]string{
		{"1", "ok", Redacted},
		{"2", "email me: [EMAIL]", Redacted},
		{"3", "or [EMAIL]", Redacted},
		{"4", "cc [EMAIL]", Redacted},
	}
	for i := range rows {
		if !slices.Equal(rows[i], want[i]) {
			t.Errorf("row %d = %q, want %q", i+1, rows[i], want[i])
		}
	}
}
