package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"google.golang.org/protobuf/proto"

	registryv1 "github.com/gyreml/gyre/pkg/pb/gyre/registry/v1"
)

// The methods below mirror RegistryService; paths follow proto/gateway.yaml.

func (c *Client) CreateModel(ctx context.Context, req *registryv1.CreateModelRequest) (*registryv1.Model, error) {
	out := &registryv1.Model{}
	return out, c.do(ctx, http.MethodPost, "/v1/models", nil, req, out)
}

func (c *Client) GetModel(ctx context.Context, model string) (*registryv1.Model, error) {
	out := &registryv1.Model{}
	return out, c.do(ctx, http.MethodGet, "/v1/models/"+url.PathEscape(model), nil, nil, out)
}

func (c *Client) ListModels(ctx context.Context, req *registryv1.ListModelsRequest) (*registryv1.ListModelsResponse, error) {
	q := paging(req.GetPageSize(), req.GetPageToken())
	setIf(q, "name_prefix", req.GetNamePrefix())
	out := &registryv1.ListModelsResponse{}
	return out, c.do(ctx, http.MethodGet, "/v1/models", q, nil, out)
}

// AllModels walks every page of ListModels.
func (c *Client) AllModels(ctx context.Context, req *registryv1.ListModelsRequest) ([]*registryv1.Model, error) {
	req = cloneOrNew(req)
	return allPages(req.GetPageToken(), func(token string) ([]*registryv1.Model, string, error) {
		req.PageToken = token
		resp, err := c.ListModels(ctx, req)
		return resp.GetModels(), resp.GetNextPageToken(), err
	})
}

func (c *Client) CreateModelVersion(ctx context.Context, req *registryv1.CreateModelVersionRequest) (*registryv1.ModelVersion, error) {
	out := &registryv1.ModelVersion{}
	return out, c.do(ctx, http.MethodPost, modelPath(req.GetModel())+"/versions", nil, req, out)
}

func (c *Client) GetModelVersion(ctx context.Context, model string, version int64) (*registryv1.ModelVersion, error) {
	out := &registryv1.ModelVersion{}
	return out, c.do(ctx, http.MethodGet, versionPath(model, version), nil, nil, out)
}

func (c *Client) ListModelVersions(ctx context.Context, req *registryv1.ListModelVersionsRequest) (*registryv1.ListModelVersionsResponse, error) {
	q := paging(req.GetPageSize(), req.GetPageToken())
	if req.GetStatus() != registryv1.VersionStatus_VERSION_STATUS_UNSPECIFIED {
		q.Set("status", req.GetStatus().String())
	}
	out := &registryv1.ListModelVersionsResponse{}
	return out, c.do(ctx, http.MethodGet, modelPath(req.GetModel())+"/versions", q, nil, out)
}

// AllModelVersions walks every page of ListModelVersions.
func (c *Client) AllModelVersions(ctx context.Context, req *registryv1.ListModelVersionsRequest) ([]*registryv1.ModelVersion, error) {
	req = cloneOrNew(req)
	return allPages(req.GetPageToken(), func(token string) ([]*registryv1.ModelVersion, string, error) {
		req.PageToken = token
		resp, err := c.ListModelVersions(ctx, req)
		return resp.GetVersions(), resp.GetNextPageToken(), err
	})
}

func (c *Client) UpdateModelVersion(ctx context.Context, req *registryv1.UpdateModelVersionRequest) (*registryv1.ModelVersion, error) {
	out := &registryv1.ModelVersion{}
	return out, c.do(ctx, http.MethodPatch, versionPath(req.GetModel(), req.GetVersion()), nil, req, out)
}

func (c *Client) SetAlias(ctx context.Context, req *registryv1.SetAliasRequest) (*registryv1.Alias, error) {
	out := &registryv1.Alias{}
	return out, c.do(ctx, http.MethodPut, aliasPath(req.GetModel(), req.GetAlias()), nil, req, out)
}

func (c *Client) GetAlias(ctx context.Context, model, alias string) (*registryv1.Alias, error) {
	out := &registryv1.Alias{}
	return out, c.do(ctx, http.MethodGet, aliasPath(model, alias), nil, nil, out)
}

func (c *Client) ListAliasHistory(ctx context.Context, req *registryv1.ListAliasHistoryRequest) (*registryv1.ListAliasHistoryResponse, error) {
	q := paging(req.GetPageSize(), req.GetPageToken())
	setIf(q, "alias", req.GetAlias())
	out := &registryv1.ListAliasHistoryResponse{}
	return out, c.do(ctx, http.MethodGet, modelPath(req.GetModel())+"/aliases:history", q, nil, out)
}

// AllAliasHistory walks every page of ListAliasHistory.
func (c *Client) AllAliasHistory(ctx context.Context, req *registryv1.ListAliasHistoryRequest) ([]*registryv1.AliasChange, error) {
	req = cloneOrNew(req)
	return allPages(req.GetPageToken(), func(token string) ([]*registryv1.AliasChange, string, error) {
		req.PageToken = token
		resp, err := c.ListAliasHistory(ctx, req)
		return resp.GetChanges(), resp.GetNextPageToken(), err
	})
}

// ApplyPipeline sends a Pipeline manifest (YAML or JSON) as it was written.
func (c *Client) ApplyPipeline(ctx context.Context, manifest string) (*registryv1.ApplyPipelineResponse, error) {
	out := &registryv1.ApplyPipelineResponse{}
	return out, c.do(ctx, http.MethodPost, "/v1/pipelines", nil, &registryv1.ApplyPipelineRequest{Manifest: manifest}, out)
}

// GetPipeline returns one version of a pipeline; version 0 is the latest.
func (c *Client) GetPipeline(ctx context.Context, name string, version int64) (*registryv1.Pipeline, error) {
	q := url.Values{}
	if version > 0 {
		q.Set("version", strconv.FormatInt(version, 10))
	}
	out := &registryv1.Pipeline{}
	return out, c.do(ctx, http.MethodGet, "/v1/pipelines/"+url.PathEscape(name), q, nil, out)
}

func (c *Client) ListPipelines(ctx context.Context, req *registryv1.ListPipelinesRequest) (*registryv1.ListPipelinesResponse, error) {
	out := &registryv1.ListPipelinesResponse{}
	return out, c.do(ctx, http.MethodGet, "/v1/pipelines", paging(req.GetPageSize(), req.GetPageToken()), nil, out)
}

// AllPipelines walks every page of ListPipelines.
func (c *Client) AllPipelines(ctx context.Context, req *registryv1.ListPipelinesRequest) ([]*registryv1.Pipeline, error) {
	req = cloneOrNew(req)
	return allPages(req.GetPageToken(), func(token string) ([]*registryv1.Pipeline, string, error) {
		req.PageToken = token
		resp, err := c.ListPipelines(ctx, req)
		return resp.GetPipelines(), resp.GetNextPageToken(), err
	})
}

func (c *Client) GetLineage(ctx context.Context, req *registryv1.GetLineageRequest) (*registryv1.Lineage, error) {
	q := url.Values{"node": {req.GetNode()}}
	if req.GetDirection() != registryv1.LineageDirection_LINEAGE_DIRECTION_UNSPECIFIED {
		q.Set("direction", req.GetDirection().String())
	}
	if req.GetDepth() > 0 {
		q.Set("depth", strconv.Itoa(int(req.GetDepth())))
	}
	out := &registryv1.Lineage{}
	return out, c.do(ctx, http.MethodGet, "/v1/lineage", q, nil, out)
}

func (c *Client) RecordLineage(ctx context.Context, req *registryv1.RecordLineageRequest) (*registryv1.RecordLineageResponse, error) {
	out := &registryv1.RecordLineageResponse{}
	return out, c.do(ctx, http.MethodPost, "/v1/lineage", nil, req, out)
}

func (c *Client) ListAuditRecords(ctx context.Context, req *registryv1.ListAuditRecordsRequest) (*registryv1.ListAuditRecordsResponse, error) {
	q := paging(req.GetPageSize(), req.GetPageToken())
	setIf(q, "resource", req.GetResource())
	out := &registryv1.ListAuditRecordsResponse{}
	return out, c.do(ctx, http.MethodGet, "/v1/audit", q, nil, out)
}

// AllAuditRecords walks every page of ListAuditRecords.
func (c *Client) AllAuditRecords(ctx context.Context, req *registryv1.ListAuditRecordsRequest) ([]*registryv1.AuditRecord, error) {
	req = cloneOrNew(req)
	return allPages(req.GetPageToken(), func(token string) ([]*registryv1.AuditRecord, string, error) {
		req.PageToken = token
		resp, err := c.ListAuditRecords(ctx, req)
		return resp.GetRecords(), resp.GetNextPageToken(), err
	})
}

func (c *Client) VerifyAudit(ctx context.Context) (*registryv1.VerifyAuditResponse, error) {
	out := &registryv1.VerifyAuditResponse{}
	return out, c.do(ctx, http.MethodGet, "/v1/audit:verify", nil, nil, out)
}

func modelPath(model string) string { return "/v1/models/" + url.PathEscape(model) }

func versionPath(model string, version int64) string {
	return modelPath(model) + "/versions/" + strconv.FormatInt(version, 10)
}

func aliasPath(model, alias string) string {
	return modelPath(model) + "/aliases/" + url.PathEscape(alias)
}

func paging(size int32, token string) url.Values {
	q := url.Values{}
	if size > 0 {
		q.Set("page_size", strconv.Itoa(int(size)))
	}
	setIf(q, "page_token", token)
	return q
}

func setIf(q url.Values, key, value string) {
	if value != "" {
		q.Set(key, value)
	}
}

// cloneOrNew copies a list request so walking pages leaves the caller's alone.
func cloneOrNew[M interface {
	proto.Message
	*T
}, T any](req M) M {
	if req == nil {
		return M(new(T))
	}
	return proto.Clone(req).(M)
}

// maxPages stops a server that keeps returning the same token from looping forever.
const maxPages = 100_000

// allPages calls page from token on until the server returns no next token.
func allPages[T any](token string, page func(token string) ([]T, string, error)) ([]T, error) {
	var all []T
	for range maxPages {
		items, next, err := page(token)
		if err != nil {
			return all, err
		}
		all = append(all, items...)
		if next == "" {
			return all, nil
		}
		if next == token {
			return all, fmt.Errorf("server returned page token %q twice", next)
		}
		token = next
	}
	return all, fmt.Errorf("more than %d pages", maxPages)
}
