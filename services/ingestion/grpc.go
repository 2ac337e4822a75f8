package ingestion

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gyreml/gyre/pkg/apierr"
	"github.com/gyreml/gyre/pkg/paging"
	ingestionv1 "github.com/gyreml/gyre/pkg/pb/gyre/ingestion/v1"
	"github.com/gyreml/gyre/pkg/tabular"
)

func (s *Service) GetDataset(ctx context.Context, req *ingestionv1.GetDatasetRequest) (*ingestionv1.Dataset, error) {
	d, err := scanDataset(s.pool.QueryRow(ctx, `SELECT `+datasetColumns+` FROM datasets d WHERE d.name = $1`, req.GetDataset()))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFoundDataset(req.GetDataset())
	}
	return d, err
}

const datasetColumns = `d.name, d.latest_version, d.schema, d.create_time, d.update_time,
	(SELECT count(*) FROM rejected_uploads r WHERE r.dataset = d.name)`

func scanDataset(row pgx.Row) (*ingestionv1.Dataset, error) {
	var d ingestionv1.Dataset
	var schema []byte
	var created, updated time.Time
	if err := row.Scan(&d.Name, &d.LatestVersion, &schema, &created, &updated, &d.RejectedUploads); err != nil {
		return nil, err
	}
	var sc tabular.Schema
	if err := json.Unmarshal(schema, &sc.Columns); err != nil {
		return nil, err
	}
	d.Schema, d.CreateTime, d.UpdateTime = columnsProto(sc), timestamppb.New(created), timestamppb.New(updated)
	return &d, nil
}

func (s *Service) ListDatasets(ctx context.Context, req *ingestionv1.ListDatasetsRequest) (*ingestionv1.ListDatasetsResponse, error) {
	after, err := paging.Key(req.GetPageToken())
	if err != nil {
		return nil, err
	}
	limit := paging.Size(req.GetPageSize())
	rows, err := s.pool.Query(ctx, `SELECT `+datasetColumns+` FROM datasets d WHERE d.name > $1 ORDER BY d.name LIMIT $2`, after, limit+1)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	resp := &ingestionv1.ListDatasetsResponse{}
	for rows.Next() {
		d, err := scanDataset(rows)
		if err != nil {
			return nil, err
		}
		if len(resp.Datasets) == limit {
			resp.NextPageToken = paging.Token(resp.Datasets[limit-1].GetName())
			break
		}
		resp.Datasets = append(resp.Datasets, d)
	}
	return resp, rows.Err()
}

func (s *Service) GetDatasetVersion(ctx context.Context, req *ingestionv1.GetDatasetVersionRequest) (*ingestionv1.DatasetVersion, error) {
	v, err := s.getVersion(ctx, req.GetDataset(), req.GetVersion())
	if err != nil {
		return nil, err
	}
	return v.proto(), nil
}

func (s *Service) getVersion(ctx context.Context, dataset string, version int64) (*versionRow, error) {
	v, err := scanVersion(s.pool.QueryRow(ctx, `SELECT `+versionColumns+` FROM dataset_versions WHERE dataset = $1 AND version = $2`, dataset, version))
	if errors.Is(err, pgx.ErrNoRows) {
		if _, derr := s.GetDataset(ctx, &ingestionv1.GetDatasetRequest{Dataset: dataset}); derr != nil {
			return nil, derr
		}
		return nil, apierr.NotFound("dataset %q has no version %d", dataset, version)
	}
	return v, err
}

func (s *Service) ListDatasetVersions(ctx context.Context, req *ingestionv1.ListDatasetVersionsRequest) (*ingestionv1.ListDatasetVersionsResponse, error) {
	if _, err := s.GetDataset(ctx, &ingestionv1.GetDatasetRequest{Dataset: req.GetDataset()}); err != nil {
		return nil, err
	}
	before, ok, err := paging.IntKey(req.GetPageToken())
	if err != nil {
		return nil, err
	}
	if !ok {
		before = 1 << 62
	}
	limit := paging.Size(req.GetPageSize())
	rows, err := s.pool.Query(ctx, `SELECT `+versionColumns+` FROM dataset_versions WHERE dataset = $1 AND version < $2
		ORDER BY version DESC LIMIT $3`, req.GetDataset(), before, limit+1)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	resp := &ingestionv1.ListDatasetVersionsResponse{}
	for rows.Next() {
		v, err := scanVersion(rows)
		if err != nil {
			return nil, err
		}
		if len(resp.Versions) == limit {
			resp.NextPageToken = paging.IntToken(resp.Versions[limit-1].GetVersion())
			break
		}
		resp.Versions = append(resp.Versions, v.proto())
	}
	return resp, rows.Err()
}

// GetReport returns a version's full report, or a rejected upload's.
func (s *Service) GetReport(ctx context.Context, req *ingestionv1.GetReportRequest) (*ingestionv1.Report, error) {
	sha := req.GetReportSha256()
	if req.GetVersion() > 0 {
		v, err := s.getVersion(ctx, req.GetDataset(), req.GetVersion())
		if err != nil {
			return nil, err
		}
		sha = v.reportSHA
	} else {
		if sha == "" {
			return nil, apierr.InvalidField("version", "give a version, or report_sha256 for a rejected upload")
		}
		var found bool
		if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM rejected_uploads WHERE dataset = $1 AND report_sha256 = $2)`,
			req.GetDataset(), sha).Scan(&found); err != nil {
			return nil, err
		}
		if !found {
			return nil, apierr.NotFound("dataset %q has no report %s", req.GetDataset(), sha)
		}
	}
	rc, err := s.blobs.Get(ctx, "reports/"+req.GetDataset()+"/sha256/"+sha, sha)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	raw, err := io.ReadAll(rc)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	st, err := structpb.NewStruct(m)
	if err != nil {
		return nil, err
	}
	return &ingestionv1.Report{Dataset: req.GetDataset(), Version: req.GetVersion(), Sha256: sha, Report: st}, nil
}

// UploadVersion takes a header message, then the file in chunks.
func (s *Service) UploadVersion(stream ingestionv1.IngestionService_UploadVersionServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	h := first.GetHeader()
	if h == nil {
		return apierr.InvalidField("header", "the first message must be the header")
	}
	pr, pw := io.Pipe()
	go func() {
		for {
			msg, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				pw.Close()
				return
			}
			if err != nil {
				pw.CloseWithError(err)
				return
			}
			if msg.GetHeader() != nil {
				pw.CloseWithError(apierr.InvalidField("header", "only the first message may be a header"))
				return
			}
			if _, err := pw.Write(msg.GetChunk()); err != nil {
				return
			}
		}
	}()
	resp, err := s.Ingest(stream.Context(), Upload{Dataset: h.GetDataset(), Format: tabular.Format(h.GetFormat()), Body: pr,
		Pipeline: h.GetPipeline(), Validation: h.GetValidation()})
	pr.CloseWithError(io.ErrClosedPipe) // stop the receiver if Ingest returned early
	if err != nil {
		return err
	}
	return stream.SendAndClose(resp)
}

// RegisterObject ingests an object already in the artifact store's bucket.
func (s *Service) RegisterObject(ctx context.Context, req *ingestionv1.RegisterObjectRequest) (*ingestionv1.UploadVersionResponse, error) {
	key, ok := s.blobs.KeyOf(req.GetUri())
	if !ok {
		return nil, apierr.InvalidField("uri", "must name an object in the artifact store's bucket (%s)", s.blobs.URI(""))
	}
	rc, err := s.blobs.Open(ctx, key)
	if err != nil {
		return nil, apierr.InvalidField("uri", "%v", err)
	}
	defer rc.Close()
	return s.Ingest(ctx, Upload{Dataset: req.GetDataset(), Format: tabular.Format(req.GetFormat()), Body: rc,
		Pipeline: req.GetPipeline(), Validation: req.GetValidation()})
}
