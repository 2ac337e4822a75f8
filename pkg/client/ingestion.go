package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/google/uuid"
	"google.golang.org/protobuf/encoding/protojson"

	ingestionv1 "github.com/gyreml/gyre/pkg/pb/gyre/ingestion/v1"
	"github.com/gyreml/gyre/pkg/tabular"
)

// The methods below mirror IngestionService; paths follow proto/gateway.yaml,
// except PushDataset, which uses the raw upload route.

func (c *Client) GetDataset(ctx context.Context, dataset string) (*ingestionv1.Dataset, error) {
	out := &ingestionv1.Dataset{}
	return out, c.do(ctx, http.MethodGet, datasetPath(dataset), nil, nil, out)
}

func (c *Client) ListDatasets(ctx context.Context, req *ingestionv1.ListDatasetsRequest) (*ingestionv1.ListDatasetsResponse, error) {
	out := &ingestionv1.ListDatasetsResponse{}
	return out, c.do(ctx, http.MethodGet, "/v1/datasets", paging(req.GetPageSize(), req.GetPageToken()), nil, out)
}

// AllDatasets walks every page of ListDatasets.
func (c *Client) AllDatasets(ctx context.Context, req *ingestionv1.ListDatasetsRequest) ([]*ingestionv1.Dataset, error) {
	req = cloneOrNew(req)
	return allPages(req.GetPageToken(), func(token string) ([]*ingestionv1.Dataset, string, error) {
		req.PageToken = token
		resp, err := c.ListDatasets(ctx, req)
		return resp.GetDatasets(), resp.GetNextPageToken(), err
	})
}

func (c *Client) ListDatasetVersions(ctx context.Context, req *ingestionv1.ListDatasetVersionsRequest) (*ingestionv1.ListDatasetVersionsResponse, error) {
	out := &ingestionv1.ListDatasetVersionsResponse{}
	return out, c.do(ctx, http.MethodGet, datasetPath(req.GetDataset())+"/versions", paging(req.GetPageSize(), req.GetPageToken()), nil, out)
}

// AllDatasetVersions walks every page of ListDatasetVersions.
func (c *Client) AllDatasetVersions(ctx context.Context, req *ingestionv1.ListDatasetVersionsRequest) ([]*ingestionv1.DatasetVersion, error) {
	req = cloneOrNew(req)
	return allPages(req.GetPageToken(), func(token string) ([]*ingestionv1.DatasetVersion, string, error) {
		req.PageToken = token
		resp, err := c.ListDatasetVersions(ctx, req)
		return resp.GetVersions(), resp.GetNextPageToken(), err
	})
}

func (c *Client) GetDatasetVersion(ctx context.Context, dataset string, version int64) (*ingestionv1.DatasetVersion, error) {
	out := &ingestionv1.DatasetVersion{}
	return out, c.do(ctx, http.MethodGet, datasetVersionPath(dataset, version), nil, nil, out)
}

// GetReport returns a version's validation report; for a rejected upload,
// which has no version, pass version 0 and the report's sha256.
func (c *Client) GetReport(ctx context.Context, dataset string, version int64, reportSHA256 string) (*ingestionv1.Report, error) {
	q := url.Values{}
	setIf(q, "report_sha256", reportSHA256)
	out := &ingestionv1.Report{}
	return out, c.do(ctx, http.MethodGet, datasetVersionPath(dataset, version)+"/report", q, nil, out)
}

// RegisterObject ingests a file already in the artifact store (s3://bucket/key).
func (c *Client) RegisterObject(ctx context.Context, req *ingestionv1.RegisterObjectRequest) (*ingestionv1.UploadVersionResponse, error) {
	out := &ingestionv1.UploadVersionResponse{}
	return out, c.do(ctx, http.MethodPost, datasetPath(req.GetDataset())+"/versions:register", nil, req, out)
}

// PushDataset uploads a file as a new version of dataset, streaming body as
// it is read (it is never held in memory). size is the body's length, or -1
// when unknown; contentType names the format (see ContentTypeFor); pipeline,
// when set, names the pipeline whose validation applies. progress, when not
// nil, is called with the bytes sent so far, from the goroutine sending them.
//
// A rejected upload is not an error: the response's summary says why. The
// upload is bounded by ctx alone, not by the client's timeout, since large
// files take as long as they take.
func (c *Client) PushDataset(ctx context.Context, dataset string, body io.Reader, size int64, contentType, pipeline string,
	progress func(sent int64)) (*ingestionv1.UploadVersionResponse, error) {
	u := c.base + datasetPath(dataset) + "/versions:upload"
	if pipeline != "" {
		u += "?" + url.Values{"pipeline": {pipeline}}.Encode()
	}
	if progress != nil {
		body = &progressReader{r: body, progress: progress}
	}
	// NopCloser hides the caller's Close from the transport: the caller owns the file.
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u, io.NopCloser(body))
	if err != nil {
		return nil, fmt.Errorf("push dataset %s: %w", dataset, err)
	}
	req.ContentLength = size
	if size == 0 {
		req.Body = http.NoBody
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("X-Request-Id", uuid.NewString())
	req.Header.Set("X-Gyre-Actor", c.actor)
	h := *c.http
	h.Timeout = 0
	resp, err := h.Do(req)
	if err != nil {
		return nil, fmt.Errorf("push dataset %s: %w", dataset, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("push dataset %s: read answer: %w", dataset, err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, decodeError(resp, raw)
	}
	out := &ingestionv1.UploadVersionResponse{}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(raw, out); err != nil {
		return nil, fmt.Errorf("push dataset %s: decode answer: %w", dataset, err)
	}
	return out, nil
}

// ContentTypeFor is the Content-Type of a file to push, from its name: .csv,
// .jsonl or .ndjson, .parquet, each but Parquet optionally followed by .gz
// (the server recognises gzip by its first bytes).
func ContentTypeFor(filename string) (string, error) {
	f, err := tabular.FormatFromFileName(filename)
	if err != nil {
		return "", err
	}
	return f.ContentType(), nil
}

// progressReader reports the running total of bytes read.
type progressReader struct {
	r        io.Reader
	sent     int64
	progress func(sent int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.sent += int64(n)
		p.progress(p.sent)
	}
	return n, err
}

func datasetPath(dataset string) string { return "/v1/datasets/" + url.PathEscape(dataset) }

func datasetVersionPath(dataset string, version int64) string {
	return datasetPath(dataset) + "/versions/" + strconv.FormatInt(version, 10)
}
