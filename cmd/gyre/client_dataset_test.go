package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	ingestionv1 "github.com/gyreml/gyre/pkg/pb/gyre/ingestion/v1"
)

func TestDemoDataIsTheExamples(t *testing.T) {
	for name, embedded := range map[string][]byte{demoCleanFile: demoCleanCSV, demoPIIFile: demoPIICSV} {
		example, err := os.ReadFile(filepath.Join("..", "..", "examples", "datasets", name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(example, embedded) {
			t.Errorf("cmd/gyre/demo_data/%s differs from examples/datasets/%s: copy one over the other", name, name)
		}
	}
}

// checkDatasetVerbs runs after two demos against the same server: the demo
// dataset has version 1 (credit-clean.csv) and a rejected upload. It returns
// version 1 as `gyre get dataset -o json` shows it.
func checkDatasetVerbs(t *testing.T, srv []string, run func(args ...string) string, matches func(out, pattern string)) *ingestionv1.DatasetVersion {
	t.Helper()
	const ds = "demo-credit-applications"
	push := func(file string, wantCode int) (stdout, stderr string) {
		t.Helper()
		out, errOut, code := runGyre(t, "", append([]string{"dataset", "push", ds, file, "--pipeline", "demo-credit-risk"}, srv...)...)
		if code != wantCode {
			t.Fatalf("push %s: exit %d, want %d\n%s%s", file, code, wantCode, out, errOut)
		}
		return out, errOut
	}
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}

	// The example file is the demo's: the same bytes again.
	out, _ := push(filepath.Join("..", "..", "examples", "datasets", demoCleanFile), 0)
	matches(out, `^unchanged: same bytes as version 1 of `+ds+`\n`)
	matches(out, `(?m)^Digest:\s+sha256:[0-9a-f]{64}$`)

	// Personal data: rejected, reasons printed, exit 1, and the report by its digest.
	out, _ = push(filepath.Join("..", "..", "examples", "datasets", demoPIIFile), 1)
	matches(out, `^rejected: credit-pii.csv was not stored as a version of `+ds+`\n`)
	matches(out, `(?m)^  - privacy: column "email" holds personal data \(email\) and the policy is reject$`)
	matches(out, `(?m)^  - privacy: column "notes" holds personal data \(email\) and the policy is reject$`)
	sha := regexp.MustCompile(`--report ([0-9a-f]{64})`).FindStringSubmatch(out)
	if sha == nil {
		t.Fatalf("push did not name the rejected report:\n%s", out)
	}
	report := run("describe", "dataset", ds, "--report", sha[1])
	matches(report, `(?m)^Verdict:\s+rejected$`)
	matches(report, `(?m)^  email\s+email\s+501\s+501\s+100\.0%\s+yes\s+1,2,3,4,5,6,7,8,9,10,\.\.\.$`)
	matches(report, `(?m)^  notes\s+phone\s+6\s+\d+\s+\S+%\s+no\s+\S+$`)
	matches(report, `(?m)^  added: email \(string\)$`)

	// Ages under 18 on rows 3 and 7: the rule fails and names the rows.
	young := editColumn(t, demoCleanCSV, "age", func(row int, v string) string {
		if row == 3 || row == 7 {
			return "15"
		}
		return v
	})
	out, _ = push(write("young.csv", young), 1)
	matches(out, `(?m)^Rules:\s+\d+ checked, 1 failed$`)
	sha = regexp.MustCompile(`--report ([0-9a-f]{64})`).FindStringSubmatch(out)
	matches(run("describe", "dataset", ds, "--report", sha[1]), `(?m)^  age: min 18\s+FAILED\s+501\s+2\s+3,7\s+-$`)

	// Higher incomes, gzipped: a new version, with the drift on income.
	richer := editColumn(t, demoCleanCSV, "income", func(_ int, v string) string { return "1" + v })
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(richer)
	_ = zw.Close()
	out, _ = push(write("richer.csv.gz", gz.Bytes()), 0)
	matches(out, `^validated: richer.csv.gz is version 2 of `+ds+`\n`)
	matches(out, `(?m)^Drift:\s+max \S+ \(income\)$`)
	matches(out, `(?m)^K-anonymity:\s+smallest group has 3 rows$`)

	desc := run("describe", "dataset", ds+"@2")
	matches(desc, `(?m)^Version:\s+2$`)
	matches(desc, `(?m)^Verdict:\s+validated$`)
	matches(desc, `(?m)^  k-anonymity over \(zip3, birth_year, sex\), k=3: passed; smallest group 3 rows`)
	matches(desc, `(?m)^  income\s+\S+\s+\S+`)
	matches(desc, `(?m)^  no personal data found$`)

	matches(run("get", "datasets"), `(?m)^`+ds+`\s+2\s+8\s+[1-9]\d*\s`)
	got := run("get", "dataset", ds)
	matches(got, `(?m)^Latest version:\s+2$`)
	matches(got, `(?m)^zip3\s+int\s+false$`)
	matches(got, `(?m)^1\s+501\s+\S+ KiB\s+[0-9a-f]{12}\s+csv\s+demo-credit-risk\s+-\s`)
	matches(got, `(?m)^2\s+501\s+.*\(income\)`)

	// Malformed and unknown files: the server's (or the client's) reason, exit 1.
	header, first, _ := strings.Cut(string(demoCleanCSV), "\n")
	first, _, _ = strings.Cut(first, "\n")
	_, errOut := push(write("broken.csv", []byte(header+"\n"+first+"\n31,\"40.5,0.2,1,021,1994,f,0\n")), 1)
	matches(errOut, `(?m)^  body: line 3, column "income": unterminated quoted field$`)
	_, errOut = push(write("sheet.xlsx", []byte("x")), 1)
	matches(errOut, `unknown format`)
	if _, errOut, code := runGyre(t, "", append([]string{"describe", "dataset", ds}, srv...)...); code != 1 || !strings.Contains(errOut, "NAME@VERSION") {
		t.Fatalf("describe without a version: exit %d\n%s", code, errOut)
	}

	var doc struct {
		Name     string            `json:"name"`
		Versions []json.RawMessage `json:"versions"`
	}
	if err := json.Unmarshal([]byte(run("get", "dataset", ds, "-o", "json")), &doc); err != nil || doc.Name != ds || len(doc.Versions) != 2 {
		t.Fatalf("get dataset -o json: %v %+v", err, doc)
	}
	// Newest first.
	v1 := &ingestionv1.DatasetVersion{}
	if err := protojson.Unmarshal(doc.Versions[1], v1); err != nil || v1.GetVersion() != 1 || len(v1.GetSha256()) != 64 {
		t.Fatalf("version 1 from json: %v %v", err, v1)
	}
	return v1
}

// editColumn rewrites one column of a CSV without quoted fields; rows count from 1.
func editColumn(t *testing.T, csv []byte, column string, edit func(row int, v string) string) []byte {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(string(csv), "\n"), "\n")
	col := -1
	for i, name := range strings.Split(lines[0], ",") {
		if name == column {
			col = i
		}
	}
	if col < 0 {
		t.Fatalf("no column %q", column)
	}
	for i := 1; i < len(lines); i++ {
		cells := strings.Split(lines[i], ",")
		cells[col] = edit(i, cells[col])
		lines[i] = strings.Join(cells, ",")
	}
	return []byte(strings.Join(lines, "\n") + "\n")
}

func TestRowNumbersStopAtTen(t *testing.T) {
	ten := []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for _, tc := range []struct {
		rows  []int64
		total int64
		want  string
	}{
		{nil, 0, "-"},
		{[]int64{4}, 1, "4"},
		{ten, 10, "1,2,3,4,5,6,7,8,9,10"},
		{ten, 501, "1,2,3,4,5,6,7,8,9,10,..."},
		{append(ten, 11), 11, "1,2,3,4,5,6,7,8,9,10,..."},
	} {
		if got := rowNumbers(tc.rows, tc.total); got != tc.want {
			t.Errorf("rowNumbers(%v, %d) = %q, want %q", tc.rows, tc.total, got, tc.want)
		}
	}
}
