package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/gyreml/gyre/pkg/client"
	ingestionv1 "github.com/gyreml/gyre/pkg/pb/gyre/ingestion/v1"
	"github.com/gyreml/gyre/pkg/quality"
	"github.com/gyreml/gyre/services/ingestion"
)

func newDatasetCmd(o *clientOptions) *cobra.Command {
	ds := &cobra.Command{
		Use:   "dataset",
		Short: "Push data files as validated, versioned datasets",
	}
	ds.AddCommand(newDatasetPushCmd(o))
	return ds
}

func newDatasetPushCmd(o *clientOptions) *cobra.Command {
	var pipeline string
	cmd := &cobra.Command{
		Use:   "push DATASET FILE",
		Short: "Upload a file (.csv, .jsonl, .ndjson or .parquet; .gz too) as a new version of a dataset",
		Long: "The server checks the file against the validation of the pipeline that trains on the dataset\n" +
			"(or the one --pipeline names): schema, rules, personal data, k-anonymity. A file that passes\n" +
			"becomes a new version; a rejected one is not stored, its reasons are printed and the exit\n" +
			"status is 1. Pushing the same bytes again returns the version they made.",
		Args: cobra.ExactArgs(2),
		RunE: o.run(func(cmd *cobra.Command, args []string, c *client.Client) error {
			dataset, path := args[0], args[1]
			resp, err := pushFile(cmd, c, dataset, path, pipeline)
			if err != nil {
				return err
			}
			if err := o.emit(cmd.OutOrStdout(), resp, func(w io.Writer) error {
				printPush(w, dataset, filepath.Base(path), resp)
				return nil
			}); err != nil {
				return err
			}
			if rejected(resp) {
				return exitError{code: 1}
			}
			return nil
		}),
	}
	cmd.Flags().StringVar(&pipeline, "pipeline", "", "pipeline whose validation applies (default: the one pipeline that trains on DATASET)")
	return cmd
}

// pushFile streams the file to the server, with a progress bar on stderr when it is a terminal.
func pushFile(cmd *cobra.Command, c *client.Client, dataset, path, pipeline string) (*ingestionv1.UploadVersionResponse, error) {
	contentType, err := client.ContentTypeFor(path)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	var progress func(int64)
	if stderr, ok := cmd.ErrOrStderr().(*os.File); ok && term.IsTerminal(int(stderr.Fd())) {
		bar := progressbar.NewOptions64(info.Size(),
			progressbar.OptionSetWriter(stderr),
			progressbar.OptionSetDescription("pushing "+filepath.Base(path)),
			progressbar.OptionShowBytes(true),
			progressbar.OptionShowCount(),
			progressbar.OptionShowTotalBytes(true),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(65*time.Millisecond),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(stderr) }),
		)
		progress = func(sent int64) { _ = bar.Set64(sent) }
		defer func() {
			if !bar.IsFinished() {
				_ = bar.Exit() // ends the bar's line when the push stopped early
			}
		}()
	}
	return c.PushDataset(cmd.Context(), dataset, f, info.Size(), contentType, pipeline, progress)
}

func rejected(resp *ingestionv1.UploadVersionResponse) bool {
	return resp.GetSummary().GetVerdict() == ingestionv1.Verdict_VERDICT_REJECTED
}

func printPush(w io.Writer, dataset, file string, resp *ingestionv1.UploadVersionResponse) {
	v, sum := resp.GetVersion(), resp.GetSummary()
	if sum == nil {
		sum = v.GetSummary()
	}
	if rejected(resp) {
		fmt.Fprintf(w, "rejected: %s was not stored as a version of %s\n", file, dataset)
		for _, r := range sum.GetReasons() {
			fmt.Fprintln(w, "  - "+r)
		}
		printSummary(w, sum)
		fmt.Fprintf(w, "Full report: gyre describe dataset %s --report %s\n", dataset, resp.GetReportSha256())
		return
	}
	if resp.GetExisting() {
		fmt.Fprintf(w, "unchanged: same bytes as version %d of %s\n", v.GetVersion(), dataset)
	} else {
		fmt.Fprintf(w, "validated: %s is version %d of %s\n", file, v.GetVersion(), dataset)
	}
	field(w, "Version", strconv.FormatInt(v.GetVersion(), 10))
	field(w, "Digest", "sha256:"+v.GetSha256())
	field(w, "Rows", strconv.FormatInt(v.GetRows(), 10))
	field(w, "Stored", fmt.Sprintf("%s as CSV (uploaded as %s)", bytesSize(v.GetSizeBytes()), v.GetSourceFormat()))
	printSummary(w, sum)
	fmt.Fprintf(w, "Full report: gyre describe dataset %s@%d\n", dataset, v.GetVersion())
}

// printSummary writes the lines of a report summary a person reads first.
func printSummary(w io.Writer, sum *ingestionv1.ReportSummary) {
	field(w, "Verdict", verdictName(sum.GetVerdict()))
	field(w, "Rules", fmt.Sprintf("%d checked, %d failed", sum.GetRulesChecked(), sum.GetRulesFailed()))
	privacy := "no personal data found"
	if n := sum.GetPrivacyFindings(); n > 0 {
		privacy = fmt.Sprintf("%d flagged finding%s", n, plural(int64(n)))
	}
	if a := sum.GetPrivacyAction(); a != "" {
		privacy += " (action: " + a + ")"
	}
	field(w, "Privacy", privacy)
	if k := sum.GetSmallestEquivalenceClass(); k > 0 {
		field(w, "K-anonymity", fmt.Sprintf("smallest group has %d row%s", k, plural(k)))
	}
	schema := "no changes"
	if ch := sum.GetSchemaChanges(); len(ch) > 0 {
		schema = strings.Join(ch, ", ")
	}
	field(w, "Schema", schema)
	if col := sum.GetMaxDriftColumn(); col != "" {
		field(w, "Drift", fmt.Sprintf("max %s (%s)", num(sum.GetMaxDrift()), col))
	}
}

func verdictName(v ingestionv1.Verdict) string {
	return strings.ToLower(strings.TrimPrefix(v.String(), "VERDICT_"))
}

func plural(n int64) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func newGetDatasetsCmd(o *clientOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "datasets",
		Short: "List datasets",
		Args:  cobra.NoArgs,
		RunE: o.run(func(cmd *cobra.Command, _ []string, c *client.Client) error {
			datasets, err := c.AllDatasets(cmd.Context(), &ingestionv1.ListDatasetsRequest{PageSize: 500})
			if err != nil {
				return err
			}
			return o.emit(cmd.OutOrStdout(), &ingestionv1.ListDatasetsResponse{Datasets: datasets}, func(w io.Writer) error {
				row(w, "NAME", "LATEST", "COLUMNS", "REJECTED UPLOADS", "UPDATED")
				for _, d := range datasets {
					row(w, d.GetName(), versionOrDash(d.GetLatestVersion()), len(d.GetSchema()), d.GetRejectedUploads(), when(d.GetUpdateTime()))
				}
				return nil
			})
		}),
	}
}

func newGetDatasetCmd(o *clientOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "dataset NAME",
		Short: "Show a dataset: its schema and versions",
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(cmd *cobra.Command, args []string, c *client.Client) error {
			d, err := c.GetDataset(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			versions, err := c.AllDatasetVersions(cmd.Context(), &ingestionv1.ListDatasetVersionsRequest{Dataset: args[0], PageSize: 500})
			if err != nil {
				return err
			}
			doc, err := jsonObject(d)
			if err != nil {
				return err
			}
			list := make([]any, len(versions))
			for i, v := range versions {
				if list[i], err = jsonValue(v); err != nil {
					return err
				}
			}
			if doc.Fields["versions"], err = structpb.NewValue(list); err != nil {
				return fmt.Errorf("encode versions: %w", err)
			}
			return o.emit(cmd.OutOrStdout(), doc, func(w io.Writer) error {
				field(w, "Name", d.GetName())
				field(w, "Latest version", versionOrDash(d.GetLatestVersion()))
				field(w, "Rejected uploads", strconv.FormatInt(d.GetRejectedUploads(), 10))
				field(w, "Created", when(d.GetCreateTime()))
				field(w, "Updated", when(d.GetUpdateTime()))
				fmt.Fprintln(w)
				row(w, "COLUMN", "TYPE", "NULLABLE")
				for _, col := range d.GetSchema() {
					row(w, col.GetName(), col.GetType(), col.GetNullable())
				}
				fmt.Fprintln(w)
				if len(versions) == 0 {
					fmt.Fprintln(w, "No versions.")
					return nil
				}
				row(w, "VERSION", "ROWS", "SIZE", "SHA256", "FROM", "PIPELINE", "MAX DRIFT", "CREATED BY", "CREATED")
				for _, v := range versions {
					drift := "-"
					if s := v.GetSummary(); s.GetMaxDriftColumn() != "" {
						drift = num(s.GetMaxDrift()) + " (" + s.GetMaxDriftColumn() + ")"
					}
					row(w, v.GetVersion(), v.GetRows(), bytesSize(v.GetSizeBytes()), short(v.GetSha256()), orDash(v.GetSourceFormat()),
						orDash(v.GetPipeline()), drift, orDash(v.GetCreatedBy()), when(v.GetCreateTime()))
				}
				return nil
			})
		}),
	}
}

func newDescribeCmd(o *clientOptions) *cobra.Command {
	describe := &cobra.Command{
		Use:   "describe",
		Short: "Show one thing in full",
	}
	var reportSHA string
	dataset := &cobra.Command{
		Use:   "dataset NAME@VERSION | NAME --report SHA256",
		Short: "Show a dataset version and its whole validation report (or a rejected upload's report)",
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(cmd *cobra.Command, args []string, c *client.Client) error {
			name, ref, hasVersion := strings.Cut(args[0], "@")
			if hasVersion == (reportSHA != "") {
				return fmt.Errorf("want NAME@VERSION, or NAME --report SHA256 for a rejected upload, got %q", args[0])
			}
			var v *ingestionv1.DatasetVersion
			var version int64
			if hasVersion {
				n, err := strconv.ParseInt(strings.TrimPrefix(ref, "v"), 10, 64)
				if err != nil || n <= 0 {
					return fmt.Errorf("version %q: want a positive number", ref)
				}
				if v, err = c.GetDatasetVersion(cmd.Context(), name, n); err != nil {
					return err
				}
				version = n
			}
			rep, err := c.GetReport(cmd.Context(), name, version, reportSHA)
			if err != nil {
				return err
			}
			doc := &structpb.Struct{Fields: map[string]*structpb.Value{}}
			if v != nil {
				if doc, err = jsonObject(v); err != nil {
					return err
				}
			}
			doc.Fields["report"] = structpb.NewStructValue(rep.GetReport())
			return o.emit(cmd.OutOrStdout(), doc, func(w io.Writer) error {
				if v != nil {
					printDatasetVersion(w, v)
					fmt.Fprintln(w)
				}
				return printReport(w, rep)
			})
		}),
	}
	dataset.Flags().StringVar(&reportSHA, "report", "", "sha256 of a rejected upload's report (push prints it)")
	describe.AddCommand(dataset)
	return describe
}

func printDatasetVersion(w io.Writer, v *ingestionv1.DatasetVersion) {
	field(w, "Dataset", v.GetDataset())
	field(w, "Version", strconv.FormatInt(v.GetVersion(), 10))
	field(w, "SHA256", v.GetSha256())
	field(w, "Upload SHA256", v.GetUploadSha256())
	field(w, "URI", v.GetUri())
	field(w, "Size", bytesSize(v.GetSizeBytes()))
	field(w, "Rows", strconv.FormatInt(v.GetRows(), 10))
	field(w, "Uploaded as", v.GetSourceFormat())
	field(w, "Pipeline", v.GetPipeline())
	field(w, "Profile", v.GetProfileUri())
	field(w, "Created by", v.GetCreatedBy())
	field(w, "Created", when(v.GetCreateTime()))
}

// maxRowNumbers is how many row numbers a line of the report lists.
const maxRowNumbers = 10

// printReport renders the stored validation report: the server's own type,
// read back from its JSON.
func printReport(w io.Writer, r *ingestionv1.Report) error {
	raw, err := protojson.Marshal(r.GetReport())
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	var rep ingestion.Report
	if err := json.Unmarshal(raw, &rep); err != nil {
		return fmt.Errorf("decode report: %w", err)
	}
	field(w, "Verdict", rep.Verdict)
	field(w, "Rules from", rep.RulesFrom)
	field(w, "Rows checked", strconv.FormatInt(rep.Rows, 10))
	field(w, "Upload SHA256", rep.UploadSHA256)
	if len(rep.Reasons) > 0 {
		fmt.Fprintln(w, "Reasons:")
		for _, reason := range rep.Reasons {
			fmt.Fprintln(w, "  - "+reason)
		}
	}

	s := rep.Schema
	fmt.Fprintf(w, "\nSchema (%s):\n", s.Source)
	expected := map[string]string{}
	for _, c := range s.Expected {
		expected[c.Name] = string(c.Type)
	}
	row(w, "  COLUMN", "TYPE", "NULLABLE", "EXPECTED")
	for _, c := range s.Actual {
		exp, ok := expected[c.Name]
		if !ok {
			exp = "-"
		}
		row(w, "  "+c.Name, c.Type, c.Nullable, exp)
	}
	d := s.Diff
	for _, c := range d.Added {
		fmt.Fprintf(w, "  added: %s (%s)\n", c.Name, c.Type)
	}
	for _, c := range d.Missing {
		fmt.Fprintf(w, "  missing: %s (%s)\n", c.Name, c.Type)
	}
	for _, c := range d.TypeChanged {
		fmt.Fprintf(w, "  type changed: %s %s -> %s (%s)\n", c.Column, c.From, c.To, c.Change)
	}
	for _, c := range d.NullableChanged {
		fmt.Fprintf(w, "  now holds nulls: %s\n", c)
	}

	rules := append(append([]quality.RuleResult{}, rep.Quality.SchemaViolations...), rep.Quality.Rules...)
	fmt.Fprintln(w, "\nRules:")
	if len(rules) == 0 {
		fmt.Fprintln(w, "  none declared")
	} else {
		row(w, "  RULE", "RESULT", "CHECKED", "FAILED", "FAILING ROWS", "DETAIL")
		for _, rr := range rules {
			result := "passed"
			if !rr.Passed {
				result = "FAILED"
			}
			row(w, "  "+rr.Rule, result, rr.Checked, rr.Failed, rowNumbers(rr.Rows, rr.Failed), orDash(rr.Detail))
		}
	}

	p := rep.Privacy
	fmt.Fprintf(w, "\nPrivacy (detect %s; action %s):\n", orDash(strings.Join(p.Detect, ", ")), orDash(p.Action))
	if len(p.Findings) == 0 {
		fmt.Fprintln(w, "  no personal data found")
	} else {
		row(w, "  COLUMN", "DETECTOR", "MATCHES", "CHECKED", "SHARE", "FLAGGED", "ROWS")
		for _, f := range p.Findings {
			row(w, "  "+f.Column, f.Detector, f.Matches, f.Checked, fmt.Sprintf("%.1f%%", 100*f.Fraction), yesNo(f.Flagged), rowNumbers(f.Rows, f.Matches))
		}
	}
	if k := p.KAnonymity; k != nil {
		verdict := "passed"
		if !k.Passed {
			verdict = "FAILED"
		}
		fmt.Fprintf(w, "  k-anonymity over (%s), k=%d: %s; smallest group %d rows, %d groups, %d below k (%d rows)\n",
			strings.Join(k.QuasiIdentifiers, ", "), k.K, verdict, k.SmallestClass, k.Classes, k.ClassesBelowK, k.RowsBelowK)
	}

	fmt.Fprintln(w, "\nDrift against the previous version:")
	if len(rep.Drift) == 0 {
		fmt.Fprintln(w, "  none measured (first version, or rejected before profiling)")
		return nil
	}
	row(w, "  COLUMN", "METHOD", "SCORE", "NOTE")
	for _, c := range rep.Drift {
		row(w, "  "+c.Column, orDash(c.Method), num(c.Score), orDash(c.Note))
	}
	return nil
}

// rowNumbers lists up to maxRowNumbers of the rows, out of total, "-" for none.
func rowNumbers(rows []int64, total int64) string {
	if len(rows) == 0 {
		return "-"
	}
	shown := rows[:min(len(rows), maxRowNumbers)]
	parts := make([]string, len(shown))
	for i, r := range shown {
		parts[i] = strconv.FormatInt(r, 10)
	}
	s := strings.Join(parts, ",")
	if total > int64(len(shown)) {
		s += ",..."
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// jsonObject is a message's JSON form as a Struct, so verbs can print
// several messages as one document.
func jsonObject(msg proto.Message) (*structpb.Struct, error) {
	raw, err := protojson.Marshal(msg)
	if err != nil {
		return nil, fmt.Errorf("encode json: %w", err)
	}
	s := &structpb.Struct{}
	if err := protojson.Unmarshal(raw, s); err != nil {
		return nil, fmt.Errorf("encode json: %w", err)
	}
	return s, nil
}

func jsonValue(msg proto.Message) (any, error) {
	s, err := jsonObject(msg)
	if err != nil {
		return nil, err
	}
	return s.AsMap(), nil
}
