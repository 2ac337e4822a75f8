package privacy

import (
	"testing"
)

// FuzzDetectors feeds arbitrary values through the scanner and both
// transformer actions. Beyond not panicking: counts stay consistent, and a
// redacted or pseudonymized value holds nothing the detectors still validate.
// Seeds live in testdata/fuzz/FuzzDetectors; run with
// go test -fuzz FuzzDetectors ./pkg/privacy/.
func FuzzDetectors(f *testing.F) {
	for _, s := range []string{
		"bob@example.com", "+1 650-253-0000", "4111 1111 1111 1111", "536-22-1234", "111.444.777-35",
		"11.222.333/0001-81", "DE89 3704 0044 0532 0130 00", "2001:db8::1", "10.0.0.1:8080",
	} {
		f.Add(s)
	}
	columns := []string{"notes", "phone", "ssn", "first_name"}
	all := map[string][]string{}
	for _, c := range columns[:3] {
		all[c] = Detectors[:len(Detectors)-1]
	}
	f.Fuzz(func(t *testing.T, v string) {
		s, err := NewScanner(columns, Config{Detect: Detectors})
		if err != nil {
			t.Fatal(err)
		}
		row := []string{v, v, v, v}
		s.Observe(1, row, nil)
		for _, fd := range s.Findings() {
			if fd.Matches > fd.Candidates || fd.Candidates > fd.Checked || fd.Checked != 1 || len(fd.Rows) > maxRows {
				t.Fatalf("inconsistent finding %+v", fd)
			}
		}
		for _, action := range []Action{Redact, Pseudonymize} {
			tr, err := NewTransformer(action, testKey, columns, all)
			if err != nil {
				t.Fatal(err)
			}
			out := []string{v, v, v, v}
			tr.Apply(out, nil)
			for i, c := range columns[:3] {
				h := hintsFor(c)
				check := finder{enabled: tr.cols[i].detectors, region: DefaultRegion, phoneHint: h.phone, ssnHint: h.ssn}
				check.scan(out[i])
				for d, l := range check.hits {
					if l == valid {
						t.Fatalf("%s in column %s: %q -> %q still holds a valid %s", action, c, v, out[i], detector(d))
					}
				}
			}
		}
	})
}
