package privacy

import (
	"cmp"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/netip"
	"slices"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

// Action is what a flagged finding does to a dataset version.
type Action string

const (
	// Reject refuses the version; nothing is transformed.
	Reject Action = "reject"
	// Redact replaces personal data with a marker.
	Redact Action = "redact"
	// Pseudonymize replaces personal data with a keyed, stable pseudonym.
	Pseudonymize Action = "pseudonymize"
)

const (
	// Redacted replaces a whole value.
	Redacted = "[REDACTED]"
	// PseudonymPrefix starts every pseudonym: "pse_" and 20 hex digits.
	PseudonymPrefix = "pse_"
	// MinKeyLen is the shortest pseudonymization key accepted.
	MinKeyLen = 16
)

// tags replace what a detector found inside a longer value.
var tags = [numDetectors]string{
	detEmail: "[EMAIL]", detPhone: "[PHONE]", detCard: "[CARD]", detSSN: "[SSN]", detCPF: "[CPF]",
	detCNPJ: "[CNPJ]", detIBAN: "[IBAN]", detIP: "[IP]", detNameHint: Redacted,
}

// maxPasses bounds the rewrite of one value: removing a match can expose a
// neighbour that a word boundary hid ("4111111111111111+14155552671").
const maxPasses = 4

// TransformOption configures a Transformer.
type TransformOption func(*transformOptions)

type transformOptions struct{ region string }

// WithDefaultRegion sets the region of phone numbers written without +CC;
// use the Scanner's Config.DefaultRegion.
func WithDefaultRegion(region string) TransformOption {
	return func(o *transformOptions) { o.region = region }
}

// Transformer cleans rows of the columns a Scanner flagged.
type Transformer struct {
	action Action
	mac    hash.Hash
	sum    []byte
	cols   []transformColumn
	f      finder
	pn     phonenumbers.PhoneNumber
}

type transformColumn struct {
	index     int
	whole     bool // flagged by name_hint: every value goes
	detectors detectorSet
	hints     columnHints
}

// NewTransformer returns a Transformer that applies action (redact or
// pseudonymize) to the flagged columns, as FlaggedColumns returns them.
// key is the pseudonymization key, at least MinKeyLen bytes; redact ignores it.
func NewTransformer(action Action, key []byte, columns []string, flagged map[string][]string, opts ...TransformOption) (*Transformer, error) {
	var o transformOptions
	for _, opt := range opts {
		opt(&o)
	}
	t := &Transformer{action: action}
	switch action {
	case Redact:
	case Pseudonymize:
		if len(key) < MinKeyLen {
			return nil, fmt.Errorf("privacy transformer: pseudonymize needs a key of at least %d bytes, got %d", MinKeyLen, len(key))
		}
		t.mac = hmac.New(sha256.New, key)
	case Reject:
		return nil, errors.New("privacy transformer: action reject refuses the version and transforms nothing")
	default:
		return nil, fmt.Errorf("privacy transformer: unknown action %q (want redact or pseudonymize)", action)
	}
	region, err := phoneRegion(o.region)
	if err != nil {
		return nil, fmt.Errorf("privacy transformer: %w", err)
	}
	t.f = finder{region: region, collect: true}
	if err := uniqueColumns(columns); err != nil {
		return nil, fmt.Errorf("privacy transformer: %w", err)
	}
	for i, name := range columns {
		dets, ok := flagged[name]
		if !ok {
			continue
		}
		set, err := parseDetectors(dets)
		if err != nil {
			return nil, fmt.Errorf("privacy transformer: column %q: %w", name, err)
		}
		t.cols = append(t.cols, transformColumn{
			index:     i,
			whole:     set.has(detNameHint),
			detectors: set &^ (1 << detNameHint),
			hints:     hintsFor(name),
		})
	}
	for name := range flagged {
		if !slices.Contains(columns, name) {
			return nil, fmt.Errorf("privacy transformer: flagged column %q is not a column of the data", name)
		}
	}
	return t, nil
}

// Apply cleans one row in place; null may be nil and null values stay null.
// A column flagged by name_hint loses every value. In other flagged columns,
// everything with a flagged detector's shape is replaced, valid or not (in a
// column of card numbers a mistyped card is still a card): the whole value
// when it is the match, else just the matched text, so free text keeps its
// words.
func (t *Transformer) Apply(values []string, null []bool) {
	for i := range t.cols {
		c := &t.cols[i]
		if c.index >= len(values) || (c.index < len(null) && null[c.index]) || values[c.index] == "" {
			continue
		}
		if c.whole {
			values[c.index] = t.replace(detNameHint, strings.TrimSpace(values[c.index]), true)
			continue
		}
		values[c.index] = t.rewrite(c, values[c.index])
	}
}

func (t *Transformer) rewrite(c *transformColumn, v string) string {
	t.f.enabled = c.detectors
	t.f.phoneHint, t.f.ssnHint = c.hints.phone, c.hints.ssn
	for range maxPasses {
		t.f.scan(v)
		if len(t.f.spans) == 0 {
			return v
		}
		spans := mergeSpans(t.f.spans)
		if len(spans) == 1 && strings.TrimSpace(v[:spans[0].start]) == "" && strings.TrimSpace(v[spans[0].end:]) == "" {
			return t.replace(spans[0].det, v[spans[0].start:spans[0].end], true)
		}
		var b strings.Builder
		prev := 0
		for _, sp := range spans {
			b.WriteString(v[prev:sp.start])
			b.WriteString(t.replace(sp.det, v[sp.start:sp.end], false))
			prev = sp.end
		}
		b.WriteString(v[prev:])
		v = b.String()
	}
	return v
}

// mergeSpans sorts spans and joins overlapping ones, so no byte of a match
// survives; a joined span keeps the detector of its first part.
func mergeSpans(spans []span) []span {
	slices.SortFunc(spans, func(a, b span) int {
		return cmp.Or(cmp.Compare(a.start, b.start), cmp.Compare(b.end, a.end))
	})
	out := spans[:1]
	for _, sp := range spans[1:] {
		last := &out[len(out)-1]
		if sp.start < last.end {
			last.end = max(last.end, sp.end)
			continue
		}
		out = append(out, sp)
	}
	return out
}

func (t *Transformer) replace(d detector, match string, whole bool) string {
	switch {
	case t.action == Pseudonymize:
		return t.pseudonym(t.canonical(d, match))
	case whole:
		return Redacted
	}
	return tags[d]
}

// pseudonym is "pse_" and the first 20 hex digits of HMAC-SHA256(key, s):
// the same key gives the same pseudonym in every version, so joins work.
func (t *Transformer) pseudonym(s string) string {
	t.mac.Reset()
	_, _ = io.WriteString(t.mac, s) // a hash never fails to write
	t.sum = t.mac.Sum(t.sum[:0])
	return PseudonymPrefix + hex.EncodeToString(t.sum[:10])
}

// canonical is the form a match is pseudonymized in, so that one person's
// data gives one pseudonym however it was written: lower-case email, E.164
// phone, digits of cards and national ids, compact upper-case IBAN,
// canonical IP text.
func (t *Transformer) canonical(d detector, s string) string {
	switch d {
	case detEmail:
		return strings.ToLower(s)
	case detPhone:
		t.pn.Reset()
		if err := phonenumbers.ParseToNumber(s, t.f.region, &t.pn); err == nil {
			return phonenumbers.Format(&t.pn, phonenumbers.E164)
		}
		return keepDigits(s, true)
	case detCard, detSSN, detCPF, detCNPJ:
		return keepDigits(s, false)
	case detIBAN:
		return strings.ToUpper(strings.ReplaceAll(s, " ", ""))
	case detIP:
		if a, err := netip.ParseAddr(s); err == nil {
			return a.String()
		}
	}
	return s
}

func keepDigits(s string, plus bool) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if isDigit(s[i]) || (plus && s[i] == '+' && i == 0) {
			b.WriteByte(s[i])
		}
	}
	return b.String()
}
