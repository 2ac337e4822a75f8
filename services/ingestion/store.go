package ingestion

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gyreml/gyre/pkg/apierr"
	"github.com/gyreml/gyre/pkg/blob"
	"github.com/gyreml/gyre/pkg/events"
	eventsv1 "github.com/gyreml/gyre/pkg/pb/gyre/events/v1"
	ingestionv1 "github.com/gyreml/gyre/pkg/pb/gyre/ingestion/v1"
	"github.com/gyreml/gyre/pkg/pg"
	"github.com/gyreml/gyre/pkg/profile"
	"github.com/gyreml/gyre/pkg/server"
	"github.com/gyreml/gyre/pkg/tabular"
)

type blobObject = blob.Object

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

// datasetRow is a dataset as stored; nil when it has no version yet.
type datasetRow struct {
	name          string
	schema        tabular.Schema
	latestVersion int64
	latestProfile string
}

func (s *Service) loadDataset(ctx context.Context, name string) (*datasetRow, error) {
	var ds datasetRow
	var schema []byte
	err := s.pool.QueryRow(ctx, `SELECT d.name, d.schema, d.latest_version,
			coalesce((SELECT v.profile_uri FROM dataset_versions v WHERE v.dataset = d.name AND v.version = d.latest_version), '')
		FROM datasets d WHERE d.name = $1`, name).Scan(&ds.name, &schema, &ds.latestVersion, &ds.latestProfile)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(schema, &ds.schema.Columns); err != nil {
		return nil, fmt.Errorf("decode schema of %s: %w", name, err)
	}
	return &ds, nil
}

// previousProfile is the latest version's profile, the reference for skew;
// nil for a first version or when it cannot be read (the skew is then omitted).
func (ds *datasetRow) previousProfile(ctx context.Context, s *Service) *profile.Profile {
	if ds == nil || ds.latestProfile == "" {
		return nil
	}
	key, ok := s.blobs.KeyOf(ds.latestProfile)
	if !ok {
		return nil
	}
	rc, err := s.blobs.Get(ctx, key, "")
	if err != nil {
		s.log.WarnContext(ctx, "previous profile unreadable", "uri", ds.latestProfile, "err", err)
		return nil
	}
	defer rc.Close()
	var p profile.Profile
	if err := json.NewDecoder(rc).Decode(&p); err != nil {
		s.log.WarnContext(ctx, "previous profile undecodable", "uri", ds.latestProfile, "err", err)
		return nil
	}
	return &p
}

// versionRow is a dataset version as stored.
type versionRow struct {
	dataset, sha256, uploadSHA, uri string
	version, size, rows             int64
	format                          string
	columns                         tabular.Schema
	reportSHA, profileURI           string
	summary                         *ingestionv1.ReportSummary
	profileSummary                  []byte
	pipeline, createdBy             string
	createTime                      time.Time
}

func (v *versionRow) proto() *ingestionv1.DatasetVersion {
	var prof *structpb.Struct
	if len(v.profileSummary) > 2 {
		prof = &structpb.Struct{}
		if err := protojson.Unmarshal(v.profileSummary, prof); err != nil {
			prof = nil
		}
	}
	return &ingestionv1.DatasetVersion{
		ProfileSummary: prof,
		Dataset:        v.dataset, Version: v.version, Sha256: v.sha256, UploadSha256: v.uploadSHA, Uri: v.uri,
		SizeBytes: v.size, Rows: v.rows, SourceFormat: v.format, Columns: columnsProto(v.columns),
		ReportSha256: v.reportSHA, ProfileUri: v.profileURI, Summary: v.summary, Pipeline: v.pipeline,
		CreateTime: timestamppb.New(v.createTime), CreatedBy: v.createdBy,
	}
}

func columnsProto(s tabular.Schema) []*ingestionv1.Column {
	out := make([]*ingestionv1.Column, len(s.Columns))
	for i, c := range s.Columns {
		out[i] = &ingestionv1.Column{Name: c.Name, Type: string(c.Type), Nullable: c.Nullable}
	}
	return out
}

const versionColumns = `dataset, version, sha256, upload_sha256, uri, size_bytes, rows, source_format, columns,
	report_sha256, profile_uri, profile_summary, summary, pipeline, create_time, created_by`

func scanVersion(row pgx.Row) (*versionRow, error) {
	var v versionRow
	var columns, summary []byte
	if err := row.Scan(&v.dataset, &v.version, &v.sha256, &v.uploadSHA, &v.uri, &v.size, &v.rows, &v.format, &columns,
		&v.reportSHA, &v.profileURI, &v.profileSummary, &summary, &v.pipeline, &v.createTime, &v.createdBy); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(columns, &v.columns.Columns); err != nil {
		return nil, err
	}
	v.summary = &ingestionv1.ReportSummary{}
	if err := protojson.Unmarshal(summary, v.summary); err != nil {
		return nil, err
	}
	return &v, nil
}

// findUpload returns what an earlier push of the same bytes produced: its
// version, or its rejection.
func (s *Service) findUpload(ctx context.Context, dataset, uploadSHA, rulesSHA string) (*ingestionv1.UploadVersionResponse, error) {
	v, err := scanVersion(s.pool.QueryRow(ctx, `SELECT `+versionColumns+` FROM dataset_versions WHERE dataset = $1 AND upload_sha256 = $2`, dataset, uploadSHA))
	if err == nil {
		return &ingestionv1.UploadVersionResponse{Version: v.proto(), Summary: v.summary, ReportSha256: v.reportSHA, Existing: true}, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return nil, err
	}
	var reportSHA string
	var summary []byte
	err = s.pool.QueryRow(ctx, `SELECT report_sha256, summary FROM rejected_uploads WHERE dataset = $1 AND upload_sha256 = $2 AND rules_sha256 = $3`,
		dataset, uploadSHA, rulesSHA).
		Scan(&reportSHA, &summary)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	sum := &ingestionv1.ReportSummary{}
	if err := protojson.Unmarshal(summary, sum); err != nil {
		return nil, err
	}
	return &ingestionv1.UploadVersionResponse{Summary: sum, ReportSha256: reportSHA, Existing: true}, nil
}

// recordVersion numbers and records a validated version with its event, in
// one transaction. It reports whether the same bytes won a race to be
// recorded first (then v is that version).
func (s *Service) recordVersion(ctx context.Context, v *versionRow, schema tabular.Schema, privacyAction string) (existing bool, err error) {
	summary, err := protojson.Marshal(v.summary)
	if err != nil {
		return false, err
	}
	columns, err := json.Marshal(v.columns.Columns)
	if err != nil {
		return false, err
	}
	schemaJSON, err := json.Marshal(schema.Columns)
	if err != nil {
		return false, err
	}
	err = pg.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO datasets (name) VALUES ($1) ON CONFLICT DO NOTHING`, v.dataset); err != nil {
			return err
		}
		var latest int64
		if err := tx.QueryRow(ctx, `SELECT latest_version FROM datasets WHERE name = $1 FOR UPDATE`, v.dataset).Scan(&latest); err != nil {
			return err
		}
		prior, err := scanVersion(tx.QueryRow(ctx, `SELECT `+versionColumns+` FROM dataset_versions WHERE dataset = $1 AND upload_sha256 = $2`, v.dataset, v.uploadSHA))
		if err == nil {
			*v, existing = *prior, true
			return nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		v.version = latest + 1
		if err := tx.QueryRow(ctx, `INSERT INTO dataset_versions (dataset, version, sha256, upload_sha256, uri, size_bytes, rows, source_format,
				columns, report_sha256, profile_uri, profile_summary, summary, pipeline, created_by)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING create_time`,
			v.dataset, v.version, v.sha256, v.uploadSHA, v.uri, v.size, v.rows, v.format, columns, v.reportSHA, v.profileURI,
			v.profileSummary, summary, v.pipeline, v.createdBy).Scan(&v.createTime); err != nil {
			return err
		}
		// The first version's schema (or the declared one) is what later versions must match.
		if _, err := tx.Exec(ctx, `UPDATE datasets SET latest_version = $2, update_time = now(),
				schema = CASE WHEN schema = '[]'::jsonb THEN $3::jsonb ELSE schema END WHERE name = $1`,
			v.dataset, v.version, schemaJSON); err != nil {
			return err
		}
		_, err = events.Enqueue(ctx, tx, source, "gyre.dataset.version.validated", &eventsv1.DatasetVersionValidated{
			Dataset: v.dataset, Version: v.version, Sha256: v.sha256, Uri: v.uri, Rows: v.rows, ReportSha256: v.reportSHA,
			ProfileUri: v.profileURI, Pipeline: v.pipeline, PrivacyAction: privacyAction,
		})
		return err
	})
	return existing, err
}

// reject keeps the report of a refused upload (never its data) and says why.
func (s *Service) reject(ctx context.Context, up Upload, r rules, rep *Report) (*ingestionv1.UploadVersionResponse, error) {
	obj, err := s.putJSON(ctx, "reports/"+up.Dataset, mustJSON(rep))
	if err != nil {
		return nil, fmt.Errorf("store report: %w", err)
	}
	summary, err := protojson.Marshal(rep.Summary)
	if err != nil {
		return nil, err
	}
	err = pg.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO datasets (name) VALUES ($1) ON CONFLICT DO NOTHING`, up.Dataset); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO rejected_uploads (dataset, upload_sha256, rules_sha256, report_sha256, summary, pipeline, created_by)
			VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING`,
			up.Dataset, rep.UploadSHA256, r.digest(), obj.SHA256, summary, r.pipeline, server.RequestInfoFrom(ctx).Actor)
		if err != nil || tag.RowsAffected() == 0 {
			return err
		}
		_, err = events.Enqueue(ctx, tx, source, "gyre.dataset.version.rejected", &eventsv1.DatasetVersionRejected{
			Dataset: up.Dataset, UploadSha256: rep.UploadSHA256, ReportSha256: obj.SHA256, Reasons: rep.Reasons, Pipeline: r.pipeline,
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "upload rejected", "dataset", up.Dataset, "upload_sha256", rep.UploadSHA256, "reasons", len(rep.Reasons))
	return &ingestionv1.UploadVersionResponse{Summary: rep.Summary, ReportSha256: obj.SHA256}, nil
}

func notFoundDataset(name string) error { return apierr.NotFound("dataset %q not found", name) }
