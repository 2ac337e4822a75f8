package privacy

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/gyreml/gyre/pkg/pipeline"
)

func TestDetectorsMatchPipelineSpec(t *testing.T) {
	if !slices.Equal(Detectors, pipeline.Detectors) {
		t.Fatalf("privacy.Detectors = %v, pipeline.Detectors = %v", Detectors, pipeline.Detectors)
	}
}

// scanColumn observes one column of values (row numbers from 1) and returns
// the findings for it.
func scanValues(t *testing.T, column string, values []string, cfg Config) []Finding {
	t.Helper()
	if cfg.Detect == nil {
		cfg.Detect = Detectors
	}
	s, err := NewScanner([]string{column}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range values {
		s.Observe(int64(i+1), []string{v}, nil)
	}
	return s.Findings()
}

func findingFor(findings []Finding, detector string) (Finding, bool) {
	for _, f := range findings {
		if f.Detector == detector {
			return f, true
		}
	}
	return Finding{}, false
}

func TestOrderNumbersAreNotCards(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for _, prefix := range []string{"", "4"} {
		values := make([]string, 2000)
		for i := range values {
			values[i] = prefix + randDigits(r, 16-len(prefix))
		}
		findings := scanValues(t, "order_number", values, Config{})
		f, ok := findingFor(findings, Card)
		if !ok {
			t.Fatalf("prefix %q: no credit_card finding; want the chance Luhn matches reported", prefix)
		}
		if f.Flagged {
			t.Errorf("prefix %q: order numbers flagged as cards: %+v", prefix, f)
		}
		t.Logf("prefix %q: %d of %d card-shaped values pass Luhn (%.1f%%)", prefix, f.Matches, f.Candidates, 100*float64(f.Matches)/float64(f.Candidates))
	}
}

func TestCardColumnIsFlagged(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	prefixes := []string{"4", "51", "55", "2221", "6011", "65", "3528"}
	var values []string
	for i := range 200 {
		n := genCard(r, prefixes[i%len(prefixes)], 16)
		if i%3 == 0 {
			n = groupCard(n, " ")
		}
		values = append(values, n)
	}
	values = append(values, "n/a", "4111 1111 1111 1112") // one blank-ish, one mistyped
	f, ok := findingFor(scanValues(t, "pan", values, Config{}), Card)
	if !ok || !f.Flagged || f.Matches != 200 || f.Candidates != 201 || f.Checked != 202 {
		t.Fatalf("card column: %+v (found %v)", f, ok)
	}
	if want := []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}; !slices.Equal(f.Rows, want) {
		t.Errorf("rows = %v, want the first ten %v", f.Rows, want)
	}
}

func TestEmailsInFreeText(t *testing.T) {
	notes := func(planted map[int]string) []string {
		values := make([]string, 1000)
		for i := range values {
			values[i] = fmt.Sprintf("customer called about order %d, resolved in %d min", 100000+i*7, i%45)
			if e, ok := planted[i]; ok {
				values[i] = "asked to be contacted at " + e + " next week"
			}
		}
		return values
	}
	three := map[int]string{41: "ana.silva@example.com.br", 402: "bob@example.org", 977: "li.wei@example.cn"}
	f, ok := findingFor(scanValues(t, "notes", notes(three), Config{}), Email)
	if !ok || !f.Flagged || f.Matches != 3 || !slices.Equal(f.Rows, []int64{42, 403, 978}) {
		t.Fatalf("three emails in notes: %+v (found %v)", f, ok)
	}

	two := map[int]string{41: "ana.silva@example.com.br", 402: "bob@example.org"}
	f, ok = findingFor(scanValues(t, "notes", notes(two), Config{}), Email)
	if !ok || f.Flagged || f.Matches != 2 {
		t.Fatalf("two emails in notes: want reported, not flagged (below MinMatches 3): %+v (found %v)", f, ok)
	}
	f, _ = findingFor(scanValues(t, "notes", notes(two), Config{MinMatches: 2}), Email)
	if !f.Flagged {
		t.Errorf("two emails with MinMatches 2: not flagged: %+v", f)
	}
}

func TestIDColumnIsNotPhones(t *testing.T) {
	// Valid US numbers written as bare digits: an id column unless named like phones.
	r := rand.New(rand.NewPCG(15, 16))
	values := make([]string, 500)
	for i := range values {
		values[i] = "650253" + randDigits(r, 4)
	}
	if f, ok := findingFor(scanValues(t, "customer_id", values, Config{}), Phone); ok {
		t.Errorf("customer_id: %+v", f)
	}
	f, ok := findingFor(scanValues(t, "phone", values, Config{}), Phone)
	if !ok || !f.Flagged || f.Matches != 500 {
		t.Errorf("phone column: %+v (found %v)", f, ok)
	}
	formatted := make([]string, len(values))
	for i, v := range values {
		formatted[i] = "(" + v[:3] + ") " + v[3:6] + "-" + v[6:]
	}
	if f, ok := findingFor(scanValues(t, "contact", formatted, Config{}), Phone); !ok || !f.Flagged {
		t.Errorf("formatted phones in an unhinted column: %+v (found %v)", f, ok)
	}
}

func TestPhonesInFreeTextNeedAMajority(t *testing.T) {
	values := make([]string, 100)
	for i := range values {
		values[i] = "no answer"
		if i%10 == 0 {
			values[i] = "call back on +1 650-253-0000"
		}
	}
	f, ok := findingFor(scanValues(t, "notes", values, Config{}), Phone)
	if !ok || f.Flagged || f.Matches != 10 {
		t.Errorf("10%% phones in notes: %+v (found %v)", f, ok)
	}
	f, _ = findingFor(scanValues(t, "notes", values, Config{MinMatchFraction: 0.1}), Phone)
	if !f.Flagged {
		t.Errorf("10%% phones with MinMatchFraction 0.1: %+v", f)
	}
}

func TestRandomNumbersAreNotNationalIDs(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 18))
	for _, c := range []struct {
		detector string
		digits   int
	}{{CPF, 11}, {CNPJ, 14}} {
		values := make([]string, 5000)
		for i := range values {
			values[i] = randDigits(r, c.digits)
		}
		if f, ok := findingFor(scanValues(t, "account", values, Config{}), c.detector); ok && f.Flagged {
			t.Errorf("random %d-digit numbers flagged as %s: %+v", c.digits, c.detector, f)
		}
	}
}

func TestNameHint(t *testing.T) {
	s, err := NewScanner([]string{"first_name", "product_name", "dob"}, Config{Detect: []string{NameHint}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		s.Observe(int64(i+1), []string{"Ana", "Widget", "1990-01-02"}, []bool{false, false, i%2 == 0})
	}
	got := s.Findings()
	want := []Finding{
		{Column: "first_name", Detector: NameHint, Matches: 20, Candidates: 20, Checked: 20, Fraction: 1, Rows: []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, Flagged: true},
		{Column: "dob", Detector: NameHint, Matches: 10, Candidates: 10, Checked: 10, Fraction: 1, Rows: []int64{2, 4, 6, 8, 10, 12, 14, 16, 18, 20}, Flagged: true},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("findings:\n got %+v\nwant %+v", got, want)
	}
	if m := FlaggedColumns(got); len(m) != 2 || m["dob"][0] != NameHint {
		t.Errorf("FlaggedColumns = %v", m)
	}
}

func TestFindingsNeverHoldValues(t *testing.T) {
	planted := []string{
		"ana.silva@example.com.br", "+1 650-253-0000", "4111 1111 1111 1111", "536-22-1234",
		"111.444.777-35", "11.222.333/0001-81", "DE89 3704 0044 0532 0130 00", "203.0.113.7", "Ana Maria Silva",
	}
	columns := []string{"email", "phone", "card", "ssn", "cpf", "cnpj", "iban", "ip", "full_name", "notes"}
	s, err := NewScanner(columns, Config{Detect: Detectors})
	if err != nil {
		t.Fatal(err)
	}
	for row := range 50 {
		values := append(slices.Clone(planted), "reach me at "+planted[0]+" or "+planted[1])
		s.Observe(int64(row), values, nil)
	}
	findings := s.Findings()
	flagged := FlaggedColumns(findings)
	for i, c := range columns[:8] {
		if !slices.Contains(flagged[c], Detectors[i]) {
			t.Errorf("column %s not flagged by %s: %v", c, Detectors[i], flagged[c])
		}
	}
	js, err := json.Marshal(findings)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range planted {
		for _, piece := range []string{p, strings.ReplaceAll(p, " ", ""), keepDigits(p, false)} {
			if len(piece) >= 6 && strings.Contains(string(js), piece) {
				t.Errorf("findings JSON holds %q: %s", piece, js)
			}
		}
	}
}

func TestNullsAndBlanksAreNotChecked(t *testing.T) {
	s, err := NewScanner([]string{"email"}, Config{Detect: []string{Email}})
	if err != nil {
		t.Fatal(err)
	}
	s.Observe(1, []string{"bob@example.com"}, nil)
	s.Observe(2, []string{"carol@example.com"}, []bool{true})
	s.Observe(3, []string{""}, nil)
	s.Observe(4, []string{}, nil) // short row
	f := s.Findings()
	if len(f) != 1 || f[0].Checked != 1 || f[0].Matches != 1 || !slices.Equal(f[0].Rows, []int64{1}) {
		t.Errorf("findings = %+v", f)
	}
}

func TestNewScannerErrors(t *testing.T) {
	for _, c := range []struct {
		cfg     Config
		columns []string
		want    string
	}{
		{Config{Detect: []string{"email", "passport"}}, []string{"a"}, `unknown detector "passport"`},
		{Config{DefaultRegion: "XX"}, []string{"a"}, `unknown phone region "XX"`},
		{Config{MinMatchFraction: 1.5}, []string{"a"}, "minMatchFraction"},
		{Config{MinMatches: -1}, []string{"a"}, "minMatches"},
		{Config{}, []string{"a", "a"}, `duplicate column "a"`},
	} {
		_, err := NewScanner(c.columns, c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewScanner(%v, %+v) = %v, want an error with %q", c.columns, c.cfg, err, c.want)
		}
	}
	if _, err := NewScanner([]string{"a"}, Config{DefaultRegion: "br"}); err != nil {
		t.Errorf("lower-case region: %v", err)
	}
}
