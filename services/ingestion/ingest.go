package ingestion

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/gyreml/gyre/pkg/apierr"
	ingestionv1 "github.com/gyreml/gyre/pkg/pb/gyre/ingestion/v1"
	"github.com/gyreml/gyre/pkg/pipeline"
	"github.com/gyreml/gyre/pkg/privacy"
	"github.com/gyreml/gyre/pkg/profile"
	"github.com/gyreml/gyre/pkg/quality"
	"github.com/gyreml/gyre/pkg/server"
	"github.com/gyreml/gyre/pkg/tabular"
)

// Upload is one push of a file, whatever the transport (REST body, gRPC
// stream, object already in S3).
type Upload struct {
	Dataset    string
	Format     tabular.Format
	Body       io.Reader
	Pipeline   string
	Validation string
}

// ErrTooLarge is an upload over Config.MaxUploadBytes.
var errTooLarge = errors.New("upload too large")

// Ingest checks an upload and, if it passes, stores it as a new version.
//
// Pass 1 streams the upload once: it parses it (any format) into a private
// spool file of canonical CSV while inferring the schema, checking the rules
// and scanning for personal data. Nothing is stored unless the verdict is
// "validated". Pass 2 streams the spool into the artifact store, applying the
// privacy policy (so raw personal data never reaches it) and profiling the
// stored values. Memory stays bounded: only sketches, counters and the
// columns' value dictionaries (bounded by count and bytes) are held.
func (s *Service) Ingest(ctx context.Context, up Upload) (*ingestionv1.UploadVersionResponse, error) {
	r, err := s.resolveRules(ctx, up.Dataset, up.Pipeline, up.Validation)
	if err != nil {
		return nil, err
	}
	ds, err := s.loadDataset(ctx, up.Dataset)
	if err != nil {
		return nil, err
	}
	expected := expectedSchema(r, ds)

	spool, err := os.CreateTemp(s.cfg.SpoolDir, "gyre-upload-*.csv")
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	defer func() {
		spool.Close()
		os.Remove(spool.Name())
	}()
	an, err := s.analyze(up, r, expected, spool)
	if err != nil {
		return nil, err
	}
	if prior, err := s.findUpload(ctx, up.Dataset, an.uploadSHA, r.digest()); err != nil || prior != nil {
		return prior, err
	}

	rep := s.judge(up, r, ds, expected, an)
	if rep.Verdict == verdictRejected {
		return s.reject(ctx, up, r, rep)
	}
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	return s.store(ctx, up, r, ds, rep, an, spool)
}

// analysis is what pass 1 learned.
type analysis struct {
	uploadSHA  string
	uploadSize int64
	header     []string
	rows       int64
	inferred   tabular.Schema
	quality    quality.Report
	findings   []privacy.Finding
	kanon      *privacy.KResult
	// profile of the spooled values; nil when pass 2 must profile.
	profile *profile.Profile
}

// countingReader fails once more than max bytes were read.
type countingReader struct {
	r   io.Reader
	n   int64
	max int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.n > c.max {
		return n, errTooLarge
	}
	return n, err
}

func (s *Service) analyze(up Upload, r rules, expected tabular.Schema, spool io.Writer) (*analysis, error) {
	counted := &countingReader{r: up.Body, max: s.cfg.MaxUploadBytes}
	hash := sha256.New()
	body := io.TeeReader(counted, hash)

	reader, cleanup, err := s.openReader(up.Format, body)
	if err != nil {
		return nil, s.uploadError(err, counted)
	}
	defer cleanup()
	header := reader.Header()
	cs, err := newPassOneChecks(header, r.validation, expected)
	if err != nil {
		return nil, err
	}

	out := tabular.NewCSVWriter(spool, header)
	rows, err := cs.run(reader, out)
	var we *writeError
	switch {
	case errors.As(err, &we):
		return nil, fmt.Errorf("spool: %w", we.err)
	case err != nil:
		return nil, s.uploadError(err, counted)
	}
	if err := out.Flush(); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	// The digest covers every byte sent, also any the parser did not need.
	if _, err := io.Copy(io.Discard, body); err != nil {
		return nil, s.uploadError(err, counted)
	}
	inferred := cs.inferred()
	profileSchema := inferred
	if len(expected.Columns) > 0 {
		profileSchema = expected
	}
	an := &analysis{
		uploadSHA: hex.EncodeToString(hash.Sum(nil)), uploadSize: counted.n,
		header: header, rows: rows, inferred: inferred,
		quality: cs.checker.Report(), findings: cs.findings(),
		profile: cs.profile(profileSchema, rows),
	}
	if cs.kanon != nil {
		res := cs.kanon.Result()
		an.kanon = &res
	}
	return an, nil
}

// newPassOneChecks prepares pass 1's checks from the validation section.
func newPassOneChecks(header []string, v pipeline.Validation, expected tabular.Schema) (*checks, error) {
	checker, err := quality.NewChecker(header, expected, v.Rules)
	if err != nil {
		return nil, apierr.InvalidField("validation.rules", "%v", err)
	}
	if _, err := privacy.NewScanner(header, privacy.Config{Detect: v.Privacy.Detect}); err != nil {
		return nil, apierr.InvalidField("validation.privacy.detect", "%v", err)
	}
	scanner := func(column string) (*privacy.Scanner, error) {
		return privacy.NewScanner([]string{column}, privacy.Config{Detect: v.Privacy.Detect})
	}
	var kanon *privacy.KAnonymity
	if len(v.Privacy.QuasiIdentifiers) > 0 {
		if kanon, err = privacy.NewKAnonymity(header, v.Privacy.QuasiIdentifiers); err != nil {
			return nil, apierr.InvalidField("validation.privacy.quasiIdentifiers", "%v", err)
		}
	}
	return newChecks(header, checker, scanner, kanon, expected, passOneWorkers(len(header)))
}

// openReader returns a streaming reader; Parquet needs random access, so it is
// spooled to a private temp file first.
func (s *Service) openReader(f tabular.Format, body io.Reader) (tabular.Reader, func(), error) {
	if f != tabular.Parquet {
		rd, err := tabular.NewReader(body, f, tabular.Options{})
		return rd, func() {}, err
	}
	tmp, err := os.CreateTemp(s.cfg.SpoolDir, "gyre-upload-*.parquet")
	if err != nil {
		return nil, nil, fmt.Errorf("spool: %w", err)
	}
	cleanup := func() {
		tmp.Close()
		os.Remove(tmp.Name())
	}
	size, err := io.Copy(tmp, body)
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	rd, err := tabular.NewParquetReader(tmp, size)
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	return rd, cleanup, nil
}

// uploadError names what is wrong with the upload; parse errors carry the
// line and column.
func (s *Service) uploadError(err error, counted *countingReader) error {
	if errors.Is(err, errTooLarge) || counted.n > counted.max {
		return apierr.TooLarge("upload exceeds the maximum of %d bytes", s.cfg.MaxUploadBytes)
	}
	var pe *tabular.ParseError
	if errors.As(err, &pe) {
		return apierr.InvalidField("body", "%s", pe.Error())
	}
	return fmt.Errorf("read upload: %w", err)
}

// expectedSchema is the schema an upload must match: declared by the
// pipeline, else the dataset's (inferred from its first version); empty for
// a first version with an inferred schema.
func expectedSchema(r rules, ds *datasetRow) tabular.Schema {
	if len(r.validation.Schema.Columns) > 0 {
		return quality.SchemaFromSpec(r.validation.Schema)
	}
	if ds != nil {
		return ds.schema
	}
	return tabular.Schema{}
}

// store runs pass 2 and records the version.
func (s *Service) store(ctx context.Context, up Upload, r rules, ds *datasetRow, rep *Report, an *analysis, spool io.Reader) (*ingestionv1.UploadVersionResponse, error) {
	schema := an.inferred
	if exp := expectedSchema(r, ds); len(exp.Columns) > 0 {
		schema = exp
	}
	var transform *privacy.Transformer
	flagged := privacy.FlaggedColumns(an.findings)
	if action := privacy.Action(r.validation.Privacy.Action); action != privacy.Reject && len(flagged) > 0 {
		if len(s.cfg.PseudonymizationKey) == 0 && action == privacy.Pseudonymize {
			return nil, apierr.FailedPrecondition("pseudonymization needs ingestion.pseudonymizationKey in the configuration")
		}
		t, err := privacy.NewTransformer(action, s.cfg.PseudonymizationKey, an.header, flagged)
		if err != nil {
			return nil, err
		}
		transform = t
	}
	data, prof, err := s.storeData(ctx, up.Dataset, an, schema, transform, spool)
	if err != nil {
		return nil, err
	}
	if prev := ds.previousProfile(ctx, s); prev != nil {
		rep.Drift = profile.Compare(prev, prof)
	}
	rep.Summary.MaxDrift, rep.Summary.MaxDriftColumn = maxDrift(rep.Drift)
	profJSON, err := json.Marshal(prof)
	if err != nil {
		return nil, err
	}
	profObj, err := s.putJSON(ctx, "profiles/"+up.Dataset, profJSON)
	if err != nil {
		return nil, fmt.Errorf("store profile: %w", err)
	}
	rep.Rows, rep.SHA256, rep.ProfileURI = an.rows, data.SHA256, s.blobs.URI(profObj.Key)
	repObj, err := s.putJSON(ctx, "reports/"+up.Dataset, mustJSON(rep))
	if err != nil {
		return nil, fmt.Errorf("store report: %w", err)
	}
	v := &versionRow{
		dataset: up.Dataset, sha256: data.SHA256, uploadSHA: an.uploadSHA, uri: s.blobs.URI(data.Key), size: data.Size,
		rows: an.rows, format: string(up.Format), columns: an.inferred, reportSHA: repObj.SHA256, profileURI: s.blobs.URI(profObj.Key),
		summary: rep.Summary, pipeline: r.pipeline, createdBy: server.RequestInfoFrom(ctx).Actor,
		profileSummary: mustJSON(prof.Summary()),
	}
	existing, err := s.recordVersion(ctx, v, schema, r.validation.Privacy.Action)
	if err != nil {
		return nil, err
	}
	return &ingestionv1.UploadVersionResponse{Version: v.proto(), Summary: v.proto().GetSummary(), ReportSha256: v.reportSHA, Existing: existing}, nil
}

// storeData streams the spool to the artifact store. When pass 1 already
// profiled exactly what will be stored (no privacy transform, profile kinds
// confirmed), the spool goes as it is; otherwise pass 2 rewrites it through
// the transform and profiles the result.
func (s *Service) storeData(ctx context.Context, dataset string, an *analysis, schema tabular.Schema, transform *privacy.Transformer, spool io.Reader) (blobObject, *profile.Profile, error) {
	if transform == nil && an.profile != nil {
		obj, err := s.blobs.PutContent(ctx, "datasets/"+dataset, spool, "text/csv")
		if err != nil {
			return obj, nil, fmt.Errorf("store dataset: %w", err)
		}
		return obj, an.profile, nil
	}
	profiler := profile.NewProfiler(columnSpecs(an.header, profileKinds(an.header, schema)))
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(rewrite(spool, an.header, transform, profiler, pw))
	}()
	obj, err := s.blobs.PutContent(ctx, "datasets/"+dataset, pr, "text/csv")
	pr.CloseWithError(err) // unblocks the writer if the upload stopped early
	if err != nil {
		return obj, nil, fmt.Errorf("store dataset: %w", err)
	}
	return obj, profiler.Profile(), nil
}

// rewrite is pass 2: the spooled rows, cleaned by the privacy policy, profiled
// and written as the stored canonical CSV.
func rewrite(spool io.Reader, header []string, t *privacy.Transformer, p *profile.Profiler, w io.Writer) error {
	rd, err := tabular.NewReader(spool, tabular.CSV, tabular.Options{})
	if err != nil {
		return fmt.Errorf("read spool: %w", err)
	}
	out := tabular.NewCSVWriter(w, header)
	for {
		rec, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read spool: %w", err)
		}
		if t != nil {
			t.Apply(rec.Values, rec.Null)
		}
		p.Observe(rec.Values, rec.Null)
		if err := out.Write(rec.Values, rec.Null); err != nil {
			return err
		}
	}
	return out.Flush()
}

func (s *Service) putJSON(ctx context.Context, prefix string, data []byte) (blobObject, error) {
	return s.blobs.PutContent(ctx, prefix, bytesReader(data), "application/json")
}

func maxDrift(d []profile.ColumnDrift) (float64, string) {
	best, col := 0.0, ""
	for _, c := range d {
		if c.Score > best {
			best, col = c.Score, c.Column
		}
	}
	return best, col
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("marshal %T: %v", v, err)) // only our own report types reach here
	}
	return b
}
