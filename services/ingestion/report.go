package ingestion

import (
	"fmt"
	"sort"
	"strings"

	ingestionv1 "github.com/gyreml/gyre/pkg/pb/gyre/ingestion/v1"
	"github.com/gyreml/gyre/pkg/privacy"
	"github.com/gyreml/gyre/pkg/profile"
	"github.com/gyreml/gyre/pkg/quality"
	"github.com/gyreml/gyre/pkg/tabular"
)

const (
	verdictValidated = "validated"
	verdictRejected  = "rejected"
)

// Report is the whole validation report, stored as JSON in the artifact
// store (content-addressed) and summarised in Postgres. It never holds a
// value of the data: only columns, counts and row numbers.
type Report struct {
	Dataset      string                     `json:"dataset"`
	UploadSHA256 string                     `json:"uploadSha256"`
	SHA256       string                     `json:"sha256,omitempty"`
	Verdict      string                     `json:"verdict"`
	Reasons      []string                   `json:"reasons,omitempty"`
	RulesFrom    string                     `json:"rulesFrom"`
	Rows         int64                      `json:"rows"`
	Schema       SchemaReport               `json:"schema"`
	Quality      quality.Report             `json:"quality"`
	Privacy      PrivacyReport              `json:"privacy"`
	Drift        []profile.ColumnDrift      `json:"drift,omitempty"`
	ProfileURI   string                     `json:"profileUri,omitempty"`
	Summary      *ingestionv1.ReportSummary `json:"-"`
}

type SchemaReport struct {
	// Source: "inferred" (first version), "dataset" (inferred from the first
	// version, now enforced) or "declared" (by the pipeline).
	Source   string                 `json:"source"`
	Expected []tabular.SchemaColumn `json:"expected,omitempty"`
	Actual   []tabular.SchemaColumn `json:"actual"`
	Diff     tabular.SchemaDiff     `json:"diff"`
}

type PrivacyReport struct {
	Detect     []string          `json:"detect,omitempty"`
	Action     string            `json:"action"`
	Findings   []privacy.Finding `json:"findings,omitempty"`
	KAnonymity *KAnonymityReport `json:"kAnonymity,omitempty"`
}

type KAnonymityReport struct {
	QuasiIdentifiers []string `json:"quasiIdentifiers"`
	K                int      `json:"k"`
	SmallestClass    int64    `json:"smallestClass"`
	Classes          int64    `json:"classes"`
	ClassesBelowK    int64    `json:"classesBelowK"`
	RowsBelowK       int64    `json:"rowsBelowK"`
	// Untracked rows fell in groups past the tracking bound; they fail the check.
	Untracked int64 `json:"untracked,omitempty"`
	Passed    bool  `json:"passed"`
}

// judge turns what pass 1 saw into a verdict with its reasons.
func (s *Service) judge(up Upload, r rules, ds *datasetRow, expected tabular.Schema, an *analysis) *Report {
	v := r.validation
	rep := &Report{
		Dataset: up.Dataset, UploadSHA256: an.uploadSHA, RulesFrom: r.source, Rows: an.rows,
		Quality: an.quality,
		Privacy: PrivacyReport{Detect: v.Privacy.Detect, Action: v.Privacy.Action, Findings: an.findings},
	}
	rep.Schema = SchemaReport{Source: "inferred", Actual: an.inferred.Columns}
	if len(expected.Columns) > 0 {
		rep.Schema.Source = "dataset"
		if len(v.Schema.Columns) > 0 {
			rep.Schema.Source = "declared"
		}
		rep.Schema.Expected = expected.Columns
		rep.Schema.Diff = tabular.CompareSchemas(expected, an.inferred)
	}
	var reasons []string
	if an.rows == 0 {
		reasons = append(reasons, "the file has a header but no rows")
	}
	if !rep.Schema.Diff.Compatible() {
		reasons = append(reasons, "schema does not match the "+rep.Schema.Source+" schema: "+rep.Schema.Diff.String())
	}
	for _, rr := range append(append([]quality.RuleResult{}, an.quality.SchemaViolations...), an.quality.Rules...) {
		if !rr.Passed {
			reasons = append(reasons, fmt.Sprintf("rule %q failed on %d of %d rows", rr.Rule, rr.Failed, rr.Checked))
		}
	}
	flagged := privacy.FlaggedColumns(an.findings)
	if privacy.Action(v.Privacy.Action) == privacy.Reject && len(flagged) > 0 {
		cols := make([]string, 0, len(flagged))
		for c := range flagged {
			cols = append(cols, c)
		}
		sort.Strings(cols)
		for _, c := range cols {
			reasons = append(reasons, fmt.Sprintf("privacy: column %q holds personal data (%s) and the policy is reject", c, strings.Join(flagged[c], ", ")))
		}
	}
	if an.kanon != nil {
		k := v.Privacy.KAnonymity
		kr := &KAnonymityReport{QuasiIdentifiers: v.Privacy.QuasiIdentifiers, K: k, SmallestClass: an.kanon.SmallestClass,
			Classes: an.kanon.Classes, Untracked: an.kanon.Untracked, ClassesBelowK: an.kanon.ClassesBelow(k), RowsBelowK: an.kanon.RowsBelow(k)}
		kr.Passed = an.rows == 0 || an.kanon.Satisfies(k)
		rep.Privacy.KAnonymity = kr
		if !kr.Passed {
			reasons = append(reasons, fmt.Sprintf("k-anonymity: the smallest group over (%s) has %d rows, below k=%d (%d groups, %d rows below k)",
				strings.Join(kr.QuasiIdentifiers, ", "), kr.SmallestClass, k, kr.ClassesBelowK, kr.RowsBelowK))
		}
	}
	rep.Verdict, rep.Reasons = verdictValidated, reasons
	if len(reasons) > 0 {
		rep.Verdict = verdictRejected
	}
	rep.Summary = summarize(rep)
	return rep
}

func summarize(rep *Report) *ingestionv1.ReportSummary {
	sum := &ingestionv1.ReportSummary{Verdict: ingestionv1.Verdict_VERDICT_VALIDATED, Reasons: rep.Reasons, PrivacyAction: rep.Privacy.Action}
	if rep.Verdict == verdictRejected {
		sum.Verdict = ingestionv1.Verdict_VERDICT_REJECTED
	}
	for _, rr := range append(append([]quality.RuleResult{}, rep.Quality.SchemaViolations...), rep.Quality.Rules...) {
		sum.RulesChecked++
		if !rr.Passed {
			sum.RulesFailed++
		}
	}
	for _, f := range rep.Privacy.Findings {
		if f.Flagged {
			sum.PrivacyFindings++
		}
	}
	if k := rep.Privacy.KAnonymity; k != nil {
		sum.SmallestEquivalenceClass = k.SmallestClass
	}
	d := rep.Schema.Diff
	for _, c := range d.Added {
		sum.SchemaChanges = append(sum.SchemaChanges, "added "+c.Name)
	}
	for _, c := range d.Missing {
		sum.SchemaChanges = append(sum.SchemaChanges, "missing "+c.Name)
	}
	for _, c := range d.TypeChanged {
		sum.SchemaChanges = append(sum.SchemaChanges, fmt.Sprintf("%s: %s -> %s", c.Column, c.From, c.To))
	}
	return sum
}
