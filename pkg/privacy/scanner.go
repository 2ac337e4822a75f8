package privacy

import (
	"fmt"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

// Defaults for Config.
const (
	DefaultRegion           = "US"
	DefaultMinMatchFraction = 0.5
	DefaultMinMatches       = 3
)

// minValidShare is the share of a column's detector-shaped values that must
// validate for the few-matches rule. Check digits pass by chance for about
// 1 in 10 (Luhn) to 1 in 100 (CPF, CNPJ, IBAN) random numbers, so a column
// of ids stays far below it while real card numbers are all valid.
const minValidShare = 0.5

// maxRows is how many row numbers a finding keeps.
const maxRows = 10

// Config says what a Scanner looks for and when a column is flagged.
type Config struct {
	// Detect lists detector names (see Detectors); empty detects nothing.
	Detect []string
	// DefaultRegion is the ISO 3166-1 region of phone numbers written
	// without +CC; default "US".
	DefaultRegion string
	// MinMatchFraction flags a column, for any detector, when at least this
	// share of its checked values validate; default 0.5.
	MinMatchFraction float64
	// MinMatches flags a column for a high-risk detector (email,
	// credit_card, ssn, cpf, cnpj, iban) when at least this many values
	// validate and at least half of the values with the detector's shape do;
	// default 3. This is what catches a few addresses in a free-text column.
	MinMatches int
}

// Finding is what one detector found in one column. It never holds a value.
type Finding struct {
	Column   string `json:"column"`
	Detector string `json:"detector"`
	// Matches counts values that validate (for name_hint: every checked value).
	Matches int64 `json:"matches"`
	// Candidates counts values with the detector's shape, valid or not
	// (card-like digits, with or without a passing Luhn check).
	Candidates int64 `json:"candidates"`
	// Checked counts the column's non-null, non-empty values.
	Checked  int64   `json:"checked"`
	Fraction float64 `json:"fraction"`
	// Rows are the first ten matching row numbers, as given to Observe or Record.
	Rows    []int64 `json:"rows"`
	Flagged bool    `json:"flagged"`
}

// Scanner runs the detectors over a stream of rows and decides, per column,
// which personal data it holds.
type Scanner struct {
	detect     detectorSet
	minFrac    float64
	minMatches int64
	cols       []scanColumn
	f          finder
}

type scanColumn struct {
	name    string
	hints   columnHints
	checked int64
	counts  [numDetectors]tally
}

type tally struct {
	candidates, matches int64
	rows                [maxRows]int64
	nrows               int
}

func (t *tally) add(row int64, l level) {
	t.candidates++
	if l != valid {
		return
	}
	t.matches++
	if t.nrows < maxRows {
		t.rows[t.nrows] = row
		t.nrows++
	}
}

// NewScanner returns a Scanner for rows with these columns.
func NewScanner(columns []string, cfg Config) (*Scanner, error) {
	detect, err := parseDetectors(cfg.Detect)
	if err != nil {
		return nil, fmt.Errorf("privacy scanner: %w", err)
	}
	region, err := phoneRegion(cfg.DefaultRegion)
	if err != nil {
		return nil, fmt.Errorf("privacy scanner: %w", err)
	}
	s := &Scanner{
		detect:     detect,
		minFrac:    cfg.MinMatchFraction,
		minMatches: int64(cfg.MinMatches),
		f:          finder{enabled: detect &^ (1 << detNameHint), region: region},
	}
	if s.minFrac == 0 {
		s.minFrac = DefaultMinMatchFraction
	}
	if s.minFrac < 0 || s.minFrac > 1 {
		return nil, fmt.Errorf("privacy scanner: minMatchFraction must be in (0, 1], got %v", cfg.MinMatchFraction)
	}
	switch {
	case cfg.MinMatches == 0:
		s.minMatches = DefaultMinMatches
	case cfg.MinMatches < 0:
		return nil, fmt.Errorf("privacy scanner: minMatches must be positive, got %d", cfg.MinMatches)
	}
	if err := uniqueColumns(columns); err != nil {
		return nil, fmt.Errorf("privacy scanner: %w", err)
	}
	s.cols = make([]scanColumn, len(columns))
	for i, name := range columns {
		s.cols[i] = scanColumn{name: name, hints: hintsFor(name)}
	}
	return s, nil
}

func phoneRegion(region string) (string, error) {
	if region == "" {
		return DefaultRegion, nil
	}
	region = strings.ToUpper(region)
	if !phonenumbers.GetSupportedRegions()[region] {
		return "", fmt.Errorf("unknown phone region %q (want an ISO 3166-1 code such as US, GB, BR)", region)
	}
	return region, nil
}

func uniqueColumns(columns []string) error {
	seen := make(map[string]bool, len(columns))
	for _, c := range columns {
		if seen[c] {
			return fmt.Errorf("duplicate column %q", c)
		}
		seen[c] = true
	}
	return nil
}

// Observe scans one row. values and null are indexed like the columns; null
// may be nil. Values past the last column are ignored.
func (s *Scanner) Observe(row int64, values []string, null []bool) {
	if s.detect == 0 {
		return
	}
	n := min(len(values), len(s.cols))
	for i := 0; i < n; i++ {
		if values[i] == "" || (i < len(null) && null[i]) {
			continue
		}
		s.Record(i, row, s.Scan(i, values[i]))
	}
}

// Hits is what the detectors found in one value of a column, so a caller
// that sees the same value again records it without scanning it again.
type Hits struct {
	levels [numDetectors]level
	found  bool
}

// Scan runs the detectors over value v of column i and records nothing.
func (s *Scanner) Scan(i int, v string) Hits {
	if s.detect == 0 || v == "" {
		return Hits{}
	}
	c := &s.cols[i]
	s.f.phoneHint, s.f.ssnHint = c.hints.phone, c.hints.ssn
	s.f.scan(v)
	return Hits{levels: s.f.hits, found: s.f.found}
}

// RowsMatter reports whether Record of a value of column i with hits h
// keeps its row (a detector found something, or the column's name says
// it holds names): if not, RecordMany can count such values together.
func (s *Scanner) RowsMatter(i int, h Hits) bool {
	return s.detect != 0 && (h.found || s.cols[i].hints.personal && s.detect.has(detNameHint))
}

// RecordMany counts n non-empty, non-null values of column i whose rows do
// not matter (RowsMatter), as n calls of Record would.
func (s *Scanner) RecordMany(i int, n int64) {
	if s.detect != 0 {
		s.cols[i].checked += n
	}
}

// Record counts a non-empty, non-null value of column i at row, with what
// Scan found in it.
func (s *Scanner) Record(i int, row int64, h Hits) {
	if s.detect == 0 {
		return
	}
	c := &s.cols[i]
	c.checked++
	if c.hints.personal && s.detect.has(detNameHint) {
		c.counts[detNameHint].add(row, valid)
	}
	if !h.found {
		return
	}
	for d := range detNameHint {
		if l := h.levels[d]; l != none {
			c.counts[d].add(row, l)
		}
	}
}

// Findings reports, per column and detector, what the rows observed so far
// hold: every detector with at least one match, flagged or not, in column
// order then detector order.
func (s *Scanner) Findings() []Finding {
	out := []Finding{}
	for _, c := range s.cols {
		for d := range numDetectors {
			t := &c.counts[d]
			if !s.detect.has(d) || t.matches == 0 {
				continue
			}
			out = append(out, Finding{
				Column:     c.name,
				Detector:   d.String(),
				Matches:    t.matches,
				Candidates: t.candidates,
				Checked:    c.checked,
				Fraction:   float64(t.matches) / float64(c.checked),
				Rows:       append([]int64(nil), t.rows[:t.nrows]...),
				Flagged:    s.flags(d, t, c.checked),
			})
		}
	}
	return out
}

// flags is the column rule: a majority of values, or for high-risk
// detectors a few values that are clearly not chance.
func (s *Scanner) flags(d detector, t *tally, checked int64) bool {
	switch {
	case t.matches == 0:
		return false
	case d == detNameHint:
		return true
	case float64(t.matches) >= s.minFrac*float64(checked):
		return true
	}
	return highRisk[d] && t.matches >= s.minMatches && float64(t.matches) >= minValidShare*float64(t.candidates)
}

// FlaggedColumns maps each flagged column to its flagging detectors: the
// input of NewTransformer, and empty when the data is clean.
func FlaggedColumns(findings []Finding) map[string][]string {
	out := map[string][]string{}
	for _, f := range findings {
		if f.Flagged {
			out[f.Column] = append(out[f.Column], f.Detector)
		}
	}
	return out
}
