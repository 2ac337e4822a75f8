package privacy

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
)

// levelOf runs one detector over one value in a column of this name.
func levelOf(det, value, column, region string) level {
	d, err := parseDetector(det)
	if err != nil {
		panic(err)
	}
	h := hintsFor(column)
	f := finder{enabled: 1 << d, region: region, phoneHint: h.phone, ssnHint: h.ssn}
	f.scan(value)
	return f.hits[d]
}

type detectorCase struct {
	value  string
	column string // "" is a column with no hint
	want   level
}

func checkCases(t *testing.T, det string, cases []detectorCase) {
	t.Helper()
	names := [...]string{"none", "candidate", "valid"}
	for _, c := range cases {
		if got := levelOf(det, c.value, c.column, "US"); got != c.want {
			t.Errorf("%s(%q, column %q) = %s, want %s", det, c.value, c.column, names[got], names[c.want])
		}
	}
}

func TestEmail(t *testing.T) {
	checkCases(t, Email, []detectorCase{
		{"bob@example.com", "", valid},
		{"O'Brien+news@mail.example.co.uk", "", valid},
		{"josé@exemplo.com.br", "", valid},
		{"user@xn--80ak6aa92e.com", "", valid},
		{"write to <ana.silva@empresa.com.br>, please.", "", valid},
		{"'bob@example.com'", "", valid},
		{"bob@localhost", "", candidate},
		{"a..b@example.com", "", candidate},
		{"bob@-example.com", "", candidate},
		{"bob@example.c", "", candidate},
		{"bob@example.c0m", "", candidate},
		{"@example.com", "", none},
		{"bob@", "", none},
		{"meet @ 5pm", "", none},
		{"no at sign here", "", none},
	})
}

func TestPhone(t *testing.T) {
	checkCases(t, Phone, []detectorCase{
		{"+1 650-253-0000", "", valid},
		{"+16502530000", "", valid},
		{"(650) 253-0000", "", valid},
		{"650-253-0000", "", valid},
		{"650.253.0000", "", valid},
		{"+44 20 7946 0958", "", valid},
		{"+55 11 98765-4321", "", valid},
		{"call me on +1 (650) 253-0000 tomorrow", "", valid},
		{"+1 123-456-7890", "", candidate}, // no area code 123
		// Bare digits are ids unless the column is named like a phone.
		{"6502530000", "", none},
		{"6502530000", "customer_id", none},
		{"6502530000", "phone", valid},
		{"6502530000", "mobileNumber", valid},
		{"1234567890", "phone", candidate},
		// Dates, times, decimals, amounts and addresses are not phones.
		{"2024-01-15 10:00:00", "", none},
		{"15.01.2024", "", none},
		{"12345.678901", "", none},
		{"1 234 567", "", none},
		{"4.155.552.671", "", none},
		{"192.168.100.200", "", none},
		{"12/01/2024", "", none},
		{"555-0100", "", candidate}, // possible as a local number, not valid without an area code
	})
	if got := levelOf(Phone, "020 7946 0958", "", "GB"); got != valid {
		t.Errorf("UK national number with region GB = %d, want valid", got)
	}
	if got := levelOf(Phone, "020 7946 0958", "", "US"); got == valid {
		t.Errorf("UK national number with region US is valid")
	}
}

func TestCard(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	cases := []detectorCase{
		{"4111 1111 1111 1111", "", valid},
		{"4111-1111-1111-1111", "", valid},
		{"card 4111111111111111 exp 12/25", "", valid},
		{"3782 822463 10005", "", valid}, // Amex test number, 4-6-5
		{"4111 1111 1111 1112", "", candidate},
		{"4111 11111111 1111", "", none},   // not in fours
		{"4111-1111 1111-1111", "", none},  // mixed separators
		{"9111111111111111", "", none},     // no issuer starts with 9
		{"411111111111", "", none},         // 12 digits
		{"41111111111111111111", "", none}, // 20 digits
		{"x4111111111111111", "", none},    // part of a word
		{"4111111111111111abc", "", none},
	}
	issuers := []struct {
		prefix string
		length int
	}{
		{"4", 16}, {"4", 13}, {"4", 19}, {"51", 16}, {"55", 16}, {"2221", 16}, {"2720", 16},
		{"34", 15}, {"37", 15}, {"6011", 16}, {"65", 16}, {"644", 16}, {"649", 19},
		{"62", 16}, {"3528", 16}, {"36", 14}, {"2200", 16}, {"6759", 16},
	}
	for _, is := range issuers {
		n := genCard(r, is.prefix, is.length)
		cases = append(cases, detectorCase{n, "", valid}, detectorCase{groupCard(n, " "), "", valid})
		broken := n[:len(n)-1] + string('0'+(n[len(n)-1]-'0'+1)%10)
		cases = append(cases, detectorCase{broken, "", candidate})
	}
	// Right issuer, wrong length: Mastercard is 16 digits, Amex 15.
	cases = append(cases, detectorCase{genCard(r, "51", 15), "", none}, detectorCase{genCard(r, "34", 16), "", none})
	checkCases(t, Card, cases)
}

func TestSSN(t *testing.T) {
	checkCases(t, SSN, []detectorCase{
		{"536-22-1234", "", valid},
		{"SSN: 536-22-1234.", "", valid},
		{"000-12-3456", "", candidate},
		{"666-12-3456", "", candidate},
		{"912-34-5678", "", candidate},
		{"536-00-1234", "", candidate},
		{"536-22-0000", "", candidate},
		{"078-05-1120", "", candidate}, // the Woolworth wallet card
		{"536221234", "", none},
		{"536221234", "ssn", valid},
		{"536 22 1234", "social_security_number", valid},
		{"536 22 1234", "", none},
		{"5362-2-1234", "", none},
		{"536-22-12345", "", none},
	})
}

func TestCPF(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	cases := []detectorCase{
		{"111.444.777-35", "", valid},
		{"11144477735", "", valid},
		{"111444777-35", "", valid},
		{"CPF 111.444.777-35 do titular", "", valid},
		{"111.444.777-36", "", candidate},
		{"11144477734", "", candidate},
		{"111.111.111-11", "", none}, // passes the arithmetic, never issued
		{"000.000.000-00", "", none},
		{"111.444.77735", "", none},
		{"1114447773", "", none},
	}
	for range 20 {
		cases = append(cases, detectorCase{genCPF(r, true), "", valid}, detectorCase{genCPF(r, false), "", valid})
	}
	checkCases(t, CPF, cases)
}

func TestCNPJ(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	cases := []detectorCase{
		{"11.222.333/0001-81", "", valid},
		{"11222333000181", "", valid},
		{"11.222.333/0001-82", "", candidate},
		{"00.000.000/0000-00", "", none},
		{"11.222.333.0001-81", "", none},
	}
	for range 20 {
		cases = append(cases, detectorCase{genCNPJ(r, true), "", valid}, detectorCase{genCNPJ(r, false), "", valid})
	}
	checkCases(t, CNPJ, cases)
}

func TestIBAN(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	cases := []detectorCase{
		// Published examples (ECBS, national banks).
		{"DE89370400440532013000", "", valid},
		{"DE89 3704 0044 0532 0130 00", "", valid},
		{"GB82 WEST 1234 5698 7654 32", "", valid},
		{"GB29NWBK60161331926819", "", valid},
		{"FR14 2004 1010 0505 0001 3M02 606", "", valid},
		{"NL91ABNA0417164300", "", valid},
		{"ES9121000418450200051332", "", valid},
		{"IT60X0542811101000000123456", "", valid},
		{"CH9300762011623852957", "", valid},
		{"BE68539007547034", "", valid},
		{"NO9386011117947", "", valid},
		{"gb82west12345698765432", "", valid},
		{"pay to DE89 3704 0044 0532 0130 00 by friday", "", valid},
		{"DE88370400440532013000", "", candidate},
		{"XX89370400440532013000", "", none},  // no such country
		{"DE8937040044053201300", "", none},   // one short
		{"DE893704004405320130001", "", none}, // one long
		{"ADE89370400440532013000", "", none}, // inside a word
	}
	for cc, n := range map[string]int{"DE": 22, "PT": 25, "BE": 16, "NO": 15, "PL": 28, "SE": 24, "HU": 28, "TR": 26} {
		cases = append(cases, detectorCase{genIBAN(r, cc, n), "", valid})
	}
	checkCases(t, IBAN, cases)
}

func TestIPAddress(t *testing.T) {
	checkCases(t, IPAddress, []detectorCase{
		{"192.168.1.1", "", valid},
		{"8.8.8.8", "", valid},
		{"client 10.1.2.3:8080 timed out", "", valid},
		{"from 203.0.113.7.", "", valid},
		{"2001:db8::1", "", valid},
		{"::1", "", valid},
		{"fe80::1%eth0", "", valid},
		{"[2001:db8::42]:443", "", valid},
		{"::ffff:192.0.2.1", "", valid},
		{"1:2:3:4:5:6:7:8", "", valid},
		{"256.1.1.1", "", candidate},
		{"01.2.3.4", "", candidate},
		{"0.0.0.0", "", none},
		{"::", "", none},
		{"1.2.3", "", none}, // a version, not an address
		{"v1.2.3.4", "", none},
		{"1.2.3.4.5", "", none},
		{"12:30:45", "", none},
		{"1:10.0.0.1", "", none},
		{"2024-01-15T10:00:00Z", "", none},
		{"aa:bb:cc:dd:ee:ff", "", none},
	})
}

func TestColumnHints(t *testing.T) {
	for name, want := range map[string]columnHints{
		"name":                   {personal: true},
		"first_name":             {personal: true},
		"firstName":              {personal: true},
		"LastName":               {personal: true},
		"surname":                {personal: true},
		"full_name":              {personal: true},
		"customer_name":          {personal: true},
		"address":                {personal: true},
		"street":                 {personal: true},
		"home_address":           {personal: true},
		"address_line_1":         {personal: true},
		"birth_date":             {personal: true},
		"dob":                    {personal: true},
		"DOB":                    {personal: true},
		"date_of_birth":          {personal: true},
		"dateOfBirth":            {personal: true},
		"email":                  {personal: true},
		"EMail":                  {personal: true},
		"customer_email":         {personal: true},
		"phone":                  {personal: true, phone: true},
		"phone_number":           {personal: true, phone: true},
		"mobile":                 {personal: true, phone: true},
		"ssn":                    {personal: true, ssn: true},
		"social_security_number": {personal: true, ssn: true},
		"product_name":           {},
		"file_name":              {},
		"email_verified":         {},
		"is_mobile":              {},
		"ip_address":             {},
		"birth_year":             {},
		"zip":                    {},
		"hotel":                  {},
		"":                       {},
	} {
		if got := hintsFor(name); got != want {
			t.Errorf("hintsFor(%q) = %+v, want %+v", name, got, want)
		}
	}
}

// Dates and timestamps, a column of most datasets, are skipped by their
// shape; anything else with digits and dashes is still scanned.
func TestTimestampShape(t *testing.T) {
	for v, want := range map[string]bool{
		"2024-05-01": true, "2024-05-01T10:00:00Z": true, "2024-05-01 10:00:00": true, "2024-05-01T10:00:00.123+05:30": true,
		"2024-05-01T10:00:00-03:00": true, "2024-05-01T10:00": false, "2024-05-01 call 555-0100": false,
		"123-45-6789": false, "2024-05-01T10:00:00 +05:30": false, "555-123-4567": false, "2024-05-01Z": false,
	} {
		if got := isTimestampShape(v); got != want {
			t.Errorf("isTimestampShape(%q) = %v, want %v", v, got, want)
		}
	}
	all := []string{"email", "phone", "credit_card", "ssn", "cpf", "cnpj", "iban", "ip_address"}
	for _, det := range all {
		for _, v := range []string{"2024-05-01", "2025-11-30T23:59:59Z", "2025-11-30T23:59:59.123456-05:00"} {
			if l := levelOf(det, v, "last_seen", "US"); l != none {
				t.Errorf("%s finds %v in timestamp %q", det, l, v)
			}
		}
	}
}

// TestPlainNumbersHoldNothing: the values the scan skips (decimals with a
// fraction, integers of up to 6 digits) are those in which every detector,
// in a column named like a phone number or an SSN, finds nothing.
func TestPlainNumbersHoldNothing(t *testing.T) {
	detect, err := parseDetectors(Detectors)
	if err != nil {
		t.Fatal(err)
	}
	f := finder{enabled: detect &^ (1 << detNameHint), phoneHint: true, ssnHint: true, region: "US"}
	rng := rand.New(rand.NewPCG(8, 8))
	skipped := 0
	for i := range 200_000 {
		var v string
		switch i % 4 {
		case 0:
			v = strconv.FormatFloat(rng.NormFloat64()*math.Pow(10, float64(rng.IntN(12))), 'f', rng.IntN(6), 64)
		case 1:
			v = strconv.Itoa(rng.IntN(1_000_000) - 500_000)
		case 2:
			v = strconv.Itoa(rng.IntN(1 << 40)) // longer ones are not skipped
		default:
			v = fmt.Sprintf("%d.%0*d", rng.IntN(1e9), 1+rng.IntN(8), rng.IntN(1e8))
		}
		if !plainNumber(v) {
			continue
		}
		skipped++
		f.hits, f.found = [numDetectors]level{}, false
		f.look(v)
		if f.found {
			t.Fatalf("%q is skipped, but the detectors find %v in it", v, f.hits)
		}
	}
	for _, v := range []string{"", "-", "1.", ".5", "+5", "1234567", "1.2.3", "1e5", "--1", "1-2"} {
		if plainNumber(v) {
			t.Errorf("plainNumber(%q) = true", v)
		}
	}
	if skipped < 100_000 {
		t.Errorf("only %d values skipped", skipped)
	}
}
