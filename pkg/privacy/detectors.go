package privacy

import (
	"fmt"
	"strings"
)

// Detector names, as written in spec.validation.privacy.detect.
const (
	Email     = "email"
	Phone     = "phone"
	Card      = "credit_card"
	SSN       = "ssn"
	CPF       = "cpf"
	CNPJ      = "cnpj"
	IBAN      = "iban"
	IPAddress = "ip_address"
	NameHint  = "name_hint"
)

// Detectors lists every detector in report order.
var Detectors = []string{Email, Phone, Card, SSN, CPF, CNPJ, IBAN, IPAddress, NameHint}

type detector uint8

const (
	detEmail detector = iota
	detPhone
	detCard
	detSSN
	detCPF
	detCNPJ
	detIBAN
	detIP
	detNameHint
	numDetectors
)

func (d detector) String() string { return Detectors[d] }

// highRisk detectors may flag a column on a few matches (Config.MinMatches):
// their validation leaves almost no false positives, and one such value in a
// free-text column is already personal data.
var highRisk = [numDetectors]bool{detEmail: true, detCard: true, detSSN: true, detCPF: true, detCNPJ: true, detIBAN: true}

// detectorSet is a bit set of detectors.
type detectorSet uint16

func (s detectorSet) has(d detector) bool { return s&(1<<d) != 0 }

func parseDetector(name string) (detector, error) {
	for i, n := range Detectors {
		if n == name {
			return detector(i), nil
		}
	}
	return 0, fmt.Errorf("unknown detector %q (want one of %s)", name, strings.Join(Detectors, ", "))
}

func parseDetectors(names []string) (detectorSet, error) {
	var set detectorSet
	for _, n := range names {
		d, err := parseDetector(n)
		if err != nil {
			return 0, err
		}
		set |= 1 << d
	}
	return set, nil
}

// level is how far a piece of text got through a detector: it has the
// detector's shape (candidate), or also passes its validation (valid).
type level uint8

const (
	none level = iota
	candidate
	valid
)

// Byte classes, looked up once per byte on the hot path.
const (
	cDigit uint16 = 1 << iota
	cLetter
	cWord     // letters, digits, '_' and every non-ASCII byte: a token boundary is a non-word byte
	cNumSep   // separators inside a formatted number
	cLocal    // email local part
	cDomain   // email domain
	cIP       // hex digits, '.' and ':'
	cHexDigit // 0-9 a-f A-F
	cMark     // '@', '.', ':' and '-', counted by the first pass over a value
	cPlain    // digits, '.' and '-': the bytes of plain numbers
)

var class [256]uint16

func init() {
	for c := 0; c < 256; c++ {
		var k uint16
		switch {
		case c >= '0' && c <= '9':
			k |= cDigit | cWord | cLocal | cDomain | cIP | cHexDigit
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
			k |= cLetter | cWord | cLocal | cDomain
			if lc := c | 0x20; lc >= 'a' && lc <= 'f' {
				k |= cIP | cHexDigit
			}
		case c >= 0x80:
			k |= cWord | cLocal | cDomain // internationalised addresses
		}
		switch c {
		case '_':
			k |= cWord | cLocal
		case ' ', '-', '.', '/', '(', ')':
			k |= cNumSep
		}
		switch c {
		case '.', '-', '+', '%', '\'':
			k |= cLocal
		}
		switch c {
		case '.', '-':
			k |= cDomain
		case ':':
			k |= cIP
		}
		switch c {
		case '.':
			k |= cIP | cMark
		case '@', ':', '-':
			k |= cMark
		}
		if c >= '0' && c <= '9' || c == '.' || c == '-' {
			k |= cPlain
		}
		class[c] = k
	}
}

func isDigit(c byte) bool { return class[c]&cDigit != 0 }
func isWord(c byte) bool  { return class[c]&cWord != 0 }
func isAlnum(c byte) bool { return class[c]&(cDigit|cLetter) != 0 }

func upper(c byte) byte {
	if c >= 'a' && c <= 'z' {
		return c - 'a' + 'A'
	}
	return c
}
