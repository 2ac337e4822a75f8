package privacy

import (
	"net/netip"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

// span is a piece of a value that a detector recognised, in byte offsets.
type span struct {
	start, end int
	det        detector
}

const numericDetectors = detectorSet(1<<detPhone | 1<<detCard | 1<<detSSN | 1<<detCPF | 1<<detCNPJ)

// finder runs the enabled detectors over one value at a time. The Scanner
// keeps the best level per detector; the Transformer also collects spans.
type finder struct {
	enabled   detectorSet
	phoneHint bool // bare digits are read as phone numbers only in a column named like one
	ssnHint   bool // bare 9 digits are read as an SSN only in a column named like one
	region    string
	pn        phonenumbers.PhoneNumber
	num       numSpan // scratch for the number being read

	hits  [numDetectors]level
	found bool

	collect bool
	spans   []span
}

func (f *finder) hit(d detector, l level, start, end int) {
	if l == none || !f.enabled.has(d) {
		return
	}
	if l > f.hits[d] {
		f.hits[d] = l
	}
	f.found = true
	if f.collect {
		f.spans = append(f.spans, span{start, end, d})
	}
}

// scan looks at v. One pass over its bytes decides which detectors can
// possibly match, so benign values cost little more than that pass.
func (f *finder) scan(v string) {
	f.hits = [numDetectors]level{}
	f.found = false
	f.spans = f.spans[:0]
	if !plainNumber(v) {
		f.look(v)
	}
}

// look runs the detectors that the bytes of v allow.
func (f *finder) look(v string) {

	var digits, dots, colons, dashes int
	var at bool
	var seen uint16
	all := ^uint16(0)
	for i := 0; i < len(v); i++ {
		k := class[v[i]]
		digits += int(k & cDigit)
		seen |= k
		all &= k
		if k&cMark != 0 {
			switch v[i] {
			case '@':
				at = true
			case '.':
				dots++
			case ':':
				colons++
			case '-':
				dashes++
			}
		}
	}
	if dashes >= 2 && digits >= 8 && isTimestampShape(v) {
		return // a date or timestamp, a common column, holds none of these
	}
	letters := seen&cLetter != 0
	// An integer or a decimal ("-23.5505", "1000123") can be something only
	// as a bare integer, and most lengths of those can't.
	plain := all&cPlain != 0 && dots <= 1 && (dashes == 0 || dashes == 1 && v[0] == '-')
	numeric := digits >= 7 && (!plain || dots == 0 && f.bareNumberMatters(digits))
	if at && f.enabled.has(detEmail) {
		f.emails(v)
	}
	if f.enabled.has(detIP) && ((dots >= 3 && digits >= 4) || colons >= 2) {
		f.ips(v)
	}
	if f.enabled&numericDetectors != 0 && numeric {
		f.numbers(v)
	}
	if f.enabled.has(detIBAN) && letters && digits >= 10 {
		f.ibans(v)
	}
}

// plainNumber reports whether v is a decimal with a fraction ("-23.5505")
// or an integer of at most 6 digits: the commonest values of all, which the
// scan below would find nothing in (a plain number can only be something
// as a bare integer of 7 digits or more), in one tight pass.
func plainNumber(v string) bool {
	i := 0
	if len(v) > 0 && v[0] == '-' {
		i = 1
	}
	start := i
	for i < len(v) && v[i]-'0' <= 9 {
		i++
	}
	if i == len(v) {
		return i > start && i-start <= 6
	}
	if i == start || v[i] != '.' {
		return false
	}
	frac := i + 1
	for i = frac; i < len(v) && v[i]-'0' <= 9; i++ {
	}
	return i == len(v) && i > frac
}

// isTimestampShape reports whether v is a whole ISO 8601 date or timestamp
// by its shape: 2006-01-02, then optionally T or a space, 15:04:05, a
// fraction, and Z or an offset.
func isTimestampShape(v string) bool {
	const date, clock = "dddd-dd-dd", "Hdd:dd:dd"
	if len(v) < len(date) || !shape(v[:len(date)], date) {
		return false
	}
	rest := v[len(date):]
	if rest == "" {
		return true
	}
	if len(rest) < len(clock) || (rest[0] != 'T' && rest[0] != ' ') || !shape(rest[1:len(clock)], clock[1:]) {
		return false
	}
	rest = rest[len(clock):]
	if len(rest) > 1 && rest[0] == '.' {
		i := 1
		for i < len(rest) && isDigit(rest[i]) {
			i++
		}
		rest = rest[i:]
	}
	return rest == "" || rest == "Z" || len(rest) == len("+07:00") && (rest[0] == '+' || rest[0] == '-') && shape(rest[1:], "dd:dd")
}

// shape reports whether s matches pattern, where 'd' stands for a digit and
// any other byte for itself.
func shape(s, pattern string) bool {
	if len(s) != len(pattern) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if pattern[i] == 'd' && !isDigit(s[i]) || pattern[i] != 'd' && s[i] != pattern[i] {
			return false
		}
	}
	return true
}

// --- email ---

func (f *finder) emails(v string) {
	for i := 0; i < len(v); i++ {
		if v[i] != '@' {
			continue
		}
		s := i
		for s > 0 && class[v[s-1]]&cLocal != 0 {
			s--
		}
		// Leading quotes and dots belong to the sentence, not the address.
		for s < i && class[v[s]]&cWord == 0 {
			s++
		}
		e := i + 1
		for e < len(v) && class[v[e]]&cDomain != 0 {
			e++
		}
		for e > i+1 && !isAlnum(v[e-1]) && v[e-1] < 0x80 {
			e--
		}
		if s == i || e == i+1 {
			continue
		}
		if (s > 0 && isWord(v[s-1])) || (e < len(v) && isWord(v[e])) {
			continue
		}
		f.hit(detEmail, emailLevel(v[s:i], v[i+1:e]), s, e)
		i = e - 1
	}
}

// emailLevel validates local@domain the way mail systems accept addresses in
// practice: a dot-atom local part and a domain of at least two labels with an
// alphabetic top-level domain.
func emailLevel(local, domain string) level {
	if local == "" || domain == "" {
		return none
	}
	if len(local) > 64 || len(domain) > 253 || local[0] == '.' || local[len(local)-1] == '.' || strings.Contains(local, "..") {
		return candidate
	}
	labels := 0
	for rest := domain; ; {
		label, tail, more := strings.Cut(rest, ".")
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return candidate
		}
		labels++
		if !more {
			if labels < 2 || !validTLD(label) {
				return candidate
			}
			return valid
		}
		rest = tail
	}
}

func validTLD(tld string) bool {
	if len(tld) < 2 {
		return false
	}
	if len(tld) > 4 && strings.EqualFold(tld[:4], "xn--") {
		return true
	}
	for i := 0; i < len(tld); i++ {
		if c := tld[i]; class[c]&cLetter == 0 && c < 0x80 {
			return false
		}
	}
	return true
}

// --- IP addresses ---

func (f *finder) ips(v string) {
	for i := 0; i < len(v); {
		if class[v[i]]&cIP == 0 {
			i++
			continue
		}
		s := i
		for i < len(v) && class[v[i]]&cIP != 0 {
			i++
		}
		if (s > 0 && isWord(v[s-1])) || (i < len(v) && isWord(v[i])) {
			continue
		}
		f.ipToken(v, s, i)
	}
}

func (f *finder) ipToken(v string, s, e int) {
	for e > s && v[e-1] == '.' {
		e--
	}
	var dots, colons int
	for i := s; i < e; i++ {
		switch v[i] {
		case '.':
			dots++
		case ':':
			colons++
		}
	}
	if dots == 3 && colons == 1 {
		// host:port, or an address ending a clause ("from 10.0.0.1:").
		e = s + strings.IndexByte(v[s:e], ':')
		dots, colons = strings.Count(v[s:e], "."), 0
	}
	tok := v[s:e]
	var l level
	switch {
	case dots == 3 && colons == 0:
		l = ipv4Level(tok)
	case colons >= 2:
		l = ipv6Level(tok)
	}
	f.hit(detIP, l, s, e)
}

// ipv4Level wants a full dotted quad: "1.2.3" is a version, not an address.
func ipv4Level(tok string) level {
	parts := 0
	for part := range strings.SplitSeq(tok, ".") {
		if parts++; part == "" || len(part) > 3 || parts > 4 {
			return none
		}
		for i := 0; i < len(part); i++ {
			if !isDigit(part[i]) {
				return none
			}
		}
	}
	if parts != 4 {
		return none
	}
	return parsedIPLevel(tok)
}

func ipv6Level(tok string) level {
	groups := strings.Count(tok, ":") + 1
	if !strings.Contains(tok, "::") && groups != 8 && !(groups == 7 && strings.Contains(tok, ".")) {
		return none
	}
	for part := range strings.SplitSeq(tok, ":") {
		if len(part) > 4 && !strings.Contains(part, ".") {
			return none
		}
	}
	return parsedIPLevel(tok)
}

func parsedIPLevel(tok string) level {
	a, err := netip.ParseAddr(tok)
	if err != nil {
		return candidate
	}
	if a.IsUnspecified() {
		return none
	}
	return valid
}

// --- numbers: cards, SSN, CPF, CNPJ, phones ---

func (f *finder) numbers(v string) {
	for i := 0; i < len(v); {
		c := v[i]
		starts := isDigit(c) || ((c == '+' || c == '(') && i+1 < len(v) && isDigit(v[i+1]))
		if !starts {
			i++
			continue
		}
		if i > 0 && isWord(v[i-1]) {
			// Digits inside a word ("INV12345678") are not a number of their own.
			i++
			for i < len(v) && isWord(v[i]) {
				i++
			}
			continue
		}
		e, nd := numberEnd(v, i)
		if e < len(v) && isWord(v[e]) {
			i = e
			continue
		}
		if nd >= 7 && (e-i != nd || f.bareNumberMatters(nd)) {
			f.number(v, i, e)
		}
		i = e
	}
}

// bareNumberMatters says whether a number of nd digits and nothing else can
// be anything: most can't, and ids are common.
func (f *finder) bareNumberMatters(nd int) bool {
	return nd == 11 || nd >= 13 && nd <= maxDigits || nd == 9 && f.ssnHint || f.phoneHint && nd <= 15
}

// numberEnd returns the end of the formatted number at v[s:] (a digit, or a
// '+' or '(' before one) and its digit count: digits joined by at most two
// separator bytes at a time, as in "(415) 555-2671", up to its last digit.
// It is the cheap first look; readNumber takes the number apart.
func numberEnd(v string, s int) (end, digits int) {
	j := s
	if !isDigit(v[j]) {
		j++
	}
	end = j
	run := 0
	for ; j < len(v); j++ {
		k := class[v[j]]
		if k&cDigit != 0 {
			digits++
			end, run = j+1, 0
			continue
		}
		if k&cNumSep == 0 || run == 2 {
			break
		}
		run++
	}
	return end, digits
}

func (f *finder) number(v string, s, e int) {
	ns := &f.num
	readNumber(v[:e], s, ns)
	if f.numberSpan(ns, s) || ns.flags&fSpace == 0 {
		return
	}
	// Several numbers separated by spaces ("4111111111111111 415-555-2671"):
	// try each piece on its own.
	for p := s; p < e; {
		for p < e && v[p] == ' ' {
			p++
		}
		q := p
		for q < e && v[q] != ' ' {
			q++
		}
		a, b := p, q
		for a < b && !isDigit(v[a]) && !((v[a] == '+' || v[a] == '(') && a+1 < b && isDigit(v[a+1])) {
			a++
		}
		if a < b {
			var piece numSpan
			readNumber(v[:b], a, &piece)
			f.numberSpan(&piece, a)
		}
		p = q
	}
}

const (
	maxDigits = 19
	maxGroups = 8
)

// What a number is written with: a leading plus, and the separators seen
// between its digits.
const (
	fPlus uint8 = 1 << iota
	fParen
	fSlash
	fDot
	fSpace
)

// numSpan is a formatted number taken apart: its digits and the lengths of
// its digit groups with the separator after each.
type numSpan struct {
	s      string
	nd     int
	digits [maxDigits]byte // the first maxDigits digits, as 0-9
	ng     int
	groups [maxGroups]uint8
	seps   [maxGroups]byte // the first separator byte after each group
	flags  uint8
	// longSep: two separator bytes between two groups.
	longSep bool
}

func sepFlag(c byte) uint8 {
	switch c {
	case '(', ')':
		return fParen
	case '/':
		return fSlash
	case '.':
		return fDot
	case ' ':
		return fSpace
	}
	return 0
}

// readNumber takes apart the formatted number at v[s:], read as numberEnd
// reads it, into ns.
func readNumber(v string, s int, ns *numSpan) {
	*ns = numSpan{}
	j := s
	switch v[j] {
	case '+':
		ns.flags, j = fPlus, j+1
	case '(':
		ns.flags, j = fParen, j+1
	}
	end, nd, ng, group := j, 0, 0, 0
	var sepFirst byte
	var sepLen int
	var sepFlags uint8
	for ; j < len(v); j++ {
		c := v[j]
		if class[c]&cDigit != 0 {
			if sepLen > 0 && ng > 0 {
				// The separators before a digit belong to the number.
				ns.endGroup(ng, group, sepFirst)
				ns.longSep = ns.longSep || sepLen > 1
				ns.flags |= sepFlags
				group = 0
			}
			if group == 0 {
				ng++
			}
			sepLen, sepFlags = 0, 0
			if nd < maxDigits {
				ns.digits[nd] = c - '0'
			}
			nd++
			group++
			end = j + 1
			continue
		}
		if class[c]&cNumSep == 0 || sepLen == 2 {
			break
		}
		if sepLen == 0 {
			sepFirst = c
		}
		sepLen++
		sepFlags |= sepFlag(c)
	}
	ns.endGroup(ng, group, 0)
	ns.nd, ns.ng = nd, ng
	ns.s = v[s:end]
}

// endGroup records the length of group number ng (from 1) and the separator after it.
func (ns *numSpan) endGroup(ng, length int, sep byte) {
	if ng == 0 || ng > maxGroups {
		return
	}
	ns.groups[ng-1] = uint8(min(length, 255))
	ns.seps[ng-1] = sep
}

func (ns *numSpan) grouped(want ...uint8) bool {
	if ns.ng != len(want) {
		return false
	}
	for i, g := range want {
		if ns.groups[i] != g {
			return false
		}
	}
	return true
}

func (ns *numSpan) separated(want string) bool {
	if ns.longSep || ns.ng != len(want)+1 {
		return false
	}
	for i := 0; i < len(want); i++ {
		if ns.seps[i] != want[i] {
			return false
		}
	}
	return true
}

func (ns *numSpan) allSame() bool {
	for i := 1; i < ns.nd && i < maxDigits; i++ {
		if ns.digits[i] != ns.digits[0] {
			return false
		}
	}
	return true
}

// numberSpan runs the numeric detectors over one number and reports whether
// any enabled one recognised it.
func (f *finder) numberSpan(ns *numSpan, off int) bool {
	if ns.nd < 7 || ns.nd > maxDigits {
		return false
	}
	end := off + len(ns.s)
	var card, ssn, cpf, cnpj level
	switch ns.nd {
	case 9:
		ssn = ssnLevel(ns, f.ssnHint)
		f.hit(detSSN, ssn, off, end)
	case 11:
		cpf = cpfLevel(ns)
		f.hit(detCPF, cpf, off, end)
	case 14:
		cnpj = cnpjLevel(ns)
		f.hit(detCNPJ, cnpj, off, end)
	}
	if ns.nd >= 13 {
		card = cardLevel(ns)
		f.hit(detCard, card, off, end)
	}
	found := f.enabled.has(detCard) && card != none || f.enabled.has(detSSN) && ssn != none ||
		f.enabled.has(detCPF) && cpf != none || f.enabled.has(detCNPJ) && cnpj != none
	// A number another detector validates, or written in its notation, is
	// not also a phone number.
	claimed := card == valid || ssn == valid || cpf == valid || cnpj == valid ||
		ssnDashed(ns) || cpfFormatted(ns) || cnpjFormatted(ns)
	if f.enabled.has(detPhone) && !claimed && phoneShaped(ns, f.phoneHint) {
		p := f.phoneLevel(ns.s)
		f.hit(detPhone, p, off, end)
		found = found || p != none
	}
	return found
}

// issuer is a range of card number prefixes (IIN) and the lengths its cards have.
type issuer struct {
	lo, hi  int
	digits  int    // prefix length
	lengths uint32 // bit n set: n-digit cards exist
}

func lengths(from, to int) uint32 {
	var m uint32
	for n := from; n <= to; n++ {
		m |= 1 << n
	}
	return m
}

var issuers = []issuer{
	{4, 4, 1, 1<<13 | 1<<16 | 1<<19}, // Visa
	{51, 55, 2, 1 << 16},             // Mastercard
	{2221, 2720, 4, 1 << 16},         // Mastercard 2-series
	{34, 34, 2, 1 << 15},             // American Express
	{37, 37, 2, 1 << 15},             // American Express
	{6011, 6011, 4, lengths(16, 19)}, // Discover
	{644, 649, 3, lengths(16, 19)},   // Discover
	{65, 65, 2, lengths(16, 19)},     // Discover
	{62, 62, 2, lengths(16, 19)},     // UnionPay
	{3528, 3589, 4, lengths(16, 19)}, // JCB
	{300, 305, 3, lengths(14, 19)},   // Diners Club
	{36, 36, 2, lengths(14, 19)},     // Diners Club
	{38, 39, 2, lengths(16, 19)},     // Diners Club
	{2200, 2204, 4, lengths(16, 19)}, // Mir
	{5018, 5018, 4, lengths(13, 19)}, // Maestro
	{5020, 5020, 4, lengths(13, 19)}, // Maestro
	{5038, 5038, 4, lengths(13, 19)}, // Maestro
	{5893, 5893, 4, lengths(13, 19)}, // Maestro
	{6304, 6304, 4, lengths(13, 19)}, // Maestro
	{6759, 6759, 4, lengths(13, 19)}, // Maestro
	{6761, 6763, 4, lengths(13, 19)}, // Maestro
	{508, 508, 3, lengths(16, 16)},   // RuPay
	{60, 60, 2, lengths(16, 16)},     // RuPay
}

var pow10 = [...]int{1, 10, 100, 1000}

func knownIssuer(d []byte) bool {
	n := len(d)
	p4 := int(d[0])*1000 + int(d[1])*100 + int(d[2])*10 + int(d[3])
	for _, is := range issuers {
		if is.lengths&(1<<n) == 0 {
			continue
		}
		if p := p4 / pow10[4-is.digits]; p >= is.lo && p <= is.hi {
			return true
		}
	}
	return false
}

func luhn(d []byte) bool {
	sum := 0
	double := false
	for i := len(d) - 1; i >= 0; i-- {
		x := int(d[i])
		if double {
			x *= 2
			if x > 9 {
				x -= 9
			}
		}
		sum += x
		double = !double
	}
	return sum%10 == 0
}

// cardLevel: 13-19 digits, bare or in groups of four (4-6-5 and 4-6-4 for
// Amex and Diners), one kind of separator, a known issuer prefix; valid
// when it passes Luhn.
func cardLevel(ns *numSpan) level {
	if ns.flags&(fPlus|fParen) != 0 || ns.nd < 13 || ns.nd > maxDigits {
		return none
	}
	if ns.ng > 1 {
		if ns.longSep || ns.ng > maxGroups {
			return none
		}
		sep := ns.seps[0]
		if sep != ' ' && sep != '-' {
			return none
		}
		for i := 1; i < ns.ng-1; i++ {
			if ns.seps[i] != sep {
				return none
			}
		}
		if !cardGrouping(ns) {
			return none
		}
	}
	d := ns.digits[:ns.nd]
	if !knownIssuer(d) {
		return none
	}
	if !luhn(d) {
		return candidate
	}
	return valid
}

func cardGrouping(ns *numSpan) bool {
	if ns.grouped(4, 6, 5) || ns.grouped(4, 6, 4) {
		return true
	}
	for i := 0; i < ns.ng-1; i++ {
		if ns.groups[i] != 4 {
			return false
		}
	}
	return ns.groups[ns.ng-1] <= 4
}

func ssnDashed(ns *numSpan) bool {
	return ns.flags&(fPlus|fParen) == 0 && ns.grouped(3, 2, 4) && ns.separated("--")
}

// ssnLevel: AAA-GG-SSSS, or bare 9 digits in a column named like an SSN;
// valid unless the area is 000, 666 or 900-999, the group 00 or the serial
// 0000 (never issued), or it is one of the famous advertising numbers.
func ssnLevel(ns *numSpan, hint bool) level {
	if ns.nd != 9 {
		return none
	}
	shaped := ssnDashed(ns)
	if !shaped && hint && ns.flags&(fPlus|fParen) == 0 {
		shaped = ns.ng == 1 || (ns.grouped(3, 2, 4) && ns.separated("  "))
	}
	if !shaped {
		return none
	}
	d := ns.digits
	area := int(d[0])*100 + int(d[1])*10 + int(d[2])
	group := int(d[3])*10 + int(d[4])
	serial := int(d[5])*1000 + int(d[6])*100 + int(d[7])*10 + int(d[8])
	switch {
	case area == 0, area == 666, area >= 900, group == 0, serial == 0:
		return candidate
	case area == 78 && group == 5 && serial == 1120, area == 219 && group == 9 && serial == 9999:
		return candidate
	}
	return valid
}

func cpfFormatted(ns *numSpan) bool {
	return ns.flags&(fPlus|fParen) == 0 &&
		((ns.grouped(3, 3, 3, 2) && ns.separated("..-")) || (ns.grouped(9, 2) && ns.separated("-")))
}

// cpfLevel: 11 digits, bare or ###.###.###-##, not all the same digit;
// valid when both check digits match.
func cpfLevel(ns *numSpan) level {
	if ns.nd != 11 || (ns.ng != 1 && !cpfFormatted(ns)) || ns.flags&(fPlus|fParen) != 0 || ns.allSame() {
		return none
	}
	d := ns.digits
	if cpfCheck(d[:9]) != d[9] || cpfCheck(d[:10]) != d[10] {
		return candidate
	}
	return valid
}

// cpfCheck is the next CPF check digit after d (9 or 10 digits).
func cpfCheck(d []byte) byte {
	sum := 0
	for i, x := range d {
		sum += int(x) * (len(d) + 1 - i)
	}
	r := sum * 10 % 11
	if r == 10 {
		r = 0
	}
	return byte(r)
}

func cnpjFormatted(ns *numSpan) bool {
	return ns.flags&(fPlus|fParen) == 0 && ns.grouped(2, 3, 3, 4, 2) && ns.separated("../-")
}

// cnpjLevel: 14 digits, bare or ##.###.###/####-##, not all the same digit;
// valid when both check digits match.
func cnpjLevel(ns *numSpan) level {
	if ns.nd != 14 || (ns.ng != 1 && !cnpjFormatted(ns)) || ns.flags&(fPlus|fParen) != 0 || ns.allSame() {
		return none
	}
	d := ns.digits
	if cnpjCheck(d[:12]) != d[12] || cnpjCheck(d[:13]) != d[13] {
		return candidate
	}
	return valid
}

// cnpjCheck is the next CNPJ check digit after d (12 or 13 digits): weights
// run 2..9 from the right, repeating.
func cnpjCheck(d []byte) byte {
	sum := 0
	w := 2
	for i := len(d) - 1; i >= 0; i-- {
		sum += int(d[i]) * w
		if w++; w > 9 {
			w = 2
		}
	}
	r := sum % 11
	if r < 2 {
		return 0
	}
	return byte(11 - r)
}

// phoneShaped says whether a number is worth handing to the phone parser:
// international (+CC), in a column named like a phone, or formatted like a
// phone number rather than a date, a decimal, a grouped amount or an address.
func phoneShaped(ns *numSpan, hint bool) bool {
	if ns.nd < 7 || ns.nd > 15 || ns.flags&fSlash != 0 || ns.ng > maxGroups {
		return false
	}
	if ns.flags&fPlus != 0 || hint {
		return true
	}
	if ns.ng < 2 || (ns.flags&fDot != 0 && ns.ng < 3) || ns.longSep && ns.flags&fParen == 0 {
		return false
	}
	// One separator throughout, after an optional (area code): 650-253-0000,
	// (650) 253-0000, 01 23 45 67 89; "57 123.45" is an amount.
	first := 0
	if ns.flags&fParen != 0 {
		first = 1
	}
	for i := first + 1; i < ns.ng-1; i++ {
		if ns.seps[i] != ns.seps[first] {
			return false
		}
	}
	g := ns.groups[:ns.ng]
	if ns.ng >= 3 && ns.seps[0] == ns.seps[1] && ((g[0] == 4 && g[1] == 2 && g[2] == 2) || (g[0] == 2 && g[1] == 2 && g[2] == 4)) {
		return false // 2024-01-15 10:00, 15.01.2024
	}
	thousands := g[0] < 3 && ns.flags&fParen == 0 && !ns.longSep
	for i := 1; i < ns.ng && thousands; i++ {
		thousands = g[i] == 3 && ns.seps[i-1] == ns.seps[0]
	}
	if thousands {
		return false // 1 234 567, 4.155.552.671
	}
	if ns.flags&fDot != 0 && ns.ng == 4 && g[0] <= 3 && g[1] <= 3 && g[2] <= 3 && g[3] <= 3 {
		return false // an IPv4 address
	}
	return true
}

func (f *finder) phoneLevel(s string) level {
	f.pn.Reset()
	if err := phonenumbers.ParseToNumber(s, f.region, &f.pn); err != nil {
		return none
	}
	// Most numbers belong to the main region of their calling code; checking
	// it first spares IsValidNumber's walk over every region sharing the code
	// (25 for +1), which costs as much as the parse.
	main := phonenumbers.GetRegionCodeForCountryCode(int(f.pn.GetCountryCode()))
	if phonenumbers.IsValidNumberForRegion(&f.pn, main) || phonenumbers.IsValidNumber(&f.pn) {
		return valid
	}
	if phonenumbers.IsPossibleNumber(&f.pn) {
		return candidate
	}
	return none
}

// --- IBAN ---

func (f *finder) ibans(v string) {
	for i := 0; i+4 <= len(v); i++ {
		if class[v[i]]&cLetter == 0 || class[v[i+1]]&cLetter == 0 || !isDigit(v[i+2]) || !isDigit(v[i+3]) {
			continue
		}
		if i > 0 && isWord(v[i-1]) {
			continue
		}
		n := ibanLength(v[i], v[i+1])
		if n == 0 {
			continue
		}
		e := ibanEnd(v, i, n)
		if e < 0 {
			continue
		}
		f.hit(detIBAN, ibanLevel(v[i:e]), i, e)
		i = e - 1
	}
}

// ibanEnd returns the end of n alphanumeric characters from s, written
// compact or in groups separated by single spaces, or -1.
func ibanEnd(v string, s, n int) int {
	count, j := 0, s
	for j < len(v) && count < n {
		c := v[j]
		if isAlnum(c) {
			count++
			j++
			continue
		}
		if c == ' ' && count >= 4 && j+1 < len(v) && isAlnum(v[j+1]) {
			j++
			continue
		}
		break
	}
	if count < n || (j < len(v) && isWord(v[j])) {
		return -1
	}
	return j
}

// ibanLevel: a known country with its IBAN length is a candidate; valid when
// the number, rearranged, is 1 modulo 97.
func ibanLevel(s string) level {
	r := 0
	add := func(c byte) {
		switch {
		case isDigit(c):
			r = (r*10 + int(c-'0')) % 97
		case isAlnum(c):
			r = (r*100 + int(upper(c)-'A'+10)) % 97
		}
	}
	for i := 4; i < len(s); i++ {
		add(s[i])
	}
	for i := 0; i < 4; i++ {
		add(s[i])
	}
	if r != 1 {
		return candidate
	}
	return valid
}

// ibanLengths is the SWIFT IBAN registry's length per country, for the
// countries that use IBAN widely.
var ibanLengths = map[string]int{
	"AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29,
	"CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24,
	"FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21,
	"HU": 28, "IE": 22, "IL": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LI": 21,
	"LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30,
	"NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24,
	"SE": 24, "SI": 19, "SK": 24, "SM": 27, "TN": 24, "TR": 26, "UA": 29, "VG": 24, "XK": 20,
}

// ibanTable is ibanLengths indexed by the two letters, for the hot path.
var ibanTable [26 * 26]uint8

func init() {
	for cc, n := range ibanLengths {
		ibanTable[int(cc[0]-'A')*26+int(cc[1]-'A')] = uint8(n)
	}
}

func ibanLength(a, b byte) int {
	a, b = upper(a), upper(b)
	if a < 'A' || a > 'Z' || b < 'A' || b > 'Z' {
		return 0
	}
	return int(ibanTable[int(a-'A')*26+int(b-'A')])
}
