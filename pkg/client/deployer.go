package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	deployerv1 "github.com/gyreml/gyre/pkg/pb/gyre/deployer/v1"
)

// The methods below mirror DeployerService; paths follow proto/gateway.yaml.

// Deploy starts a rollout of model@version to an environment.
func (c *Client) Deploy(ctx context.Context, req *deployerv1.DeployRequest) (*deployerv1.Deployment, error) {
	out := &deployerv1.Deployment{}
	path := "/v1/models/" + url.PathEscape(req.GetModel()) + "/versions/" + strconv.FormatInt(req.GetVersion(), 10) + ":deploy"
	return out, c.do(ctx, http.MethodPost, path, nil, req, out)
}

func (c *Client) GetDeployment(ctx context.Context, deployment string) (*deployerv1.Deployment, error) {
	out := &deployerv1.Deployment{}
	return out, c.do(ctx, http.MethodGet, deploymentPath(deployment), nil, nil, out)
}

// ListDeployments returns rollouts newest first.
func (c *Client) ListDeployments(ctx context.Context, req *deployerv1.ListDeploymentsRequest) (*deployerv1.ListDeploymentsResponse, error) {
	q := paging(req.GetPageSize(), req.GetPageToken())
	setIf(q, "model", req.GetModel())
	setIf(q, "environment", req.GetEnvironment())
	if req.GetActiveOnly() {
		q.Set("activeOnly", "true")
	}
	out := &deployerv1.ListDeploymentsResponse{}
	return out, c.do(ctx, http.MethodGet, "/v1/deployments", q, nil, out)
}

// AllDeployments walks every page of ListDeployments.
func (c *Client) AllDeployments(ctx context.Context, req *deployerv1.ListDeploymentsRequest) ([]*deployerv1.Deployment, error) {
	req = cloneOrNew(req)
	return allPages(req.GetPageToken(), func(token string) ([]*deployerv1.Deployment, string, error) {
		req.PageToken = token
		resp, err := c.ListDeployments(ctx, req)
		return resp.GetDeployments(), resp.GetNextPageToken(), err
	})
}

// ApproveDeployment lets a rollout waiting for manual approval go on.
func (c *Client) ApproveDeployment(ctx context.Context, deployment, comment string) (*deployerv1.Deployment, error) {
	out := &deployerv1.Deployment{}
	return out, c.do(ctx, http.MethodPost, deploymentPath(deployment)+":approve", nil, &deployerv1.ApproveDeploymentRequest{Comment: comment}, out)
}

// Rollback returns an environment to the version it served before.
func (c *Client) Rollback(ctx context.Context, model, environment, reason string) (*deployerv1.Deployment, error) {
	out := &deployerv1.Deployment{}
	path := "/v1/models/" + url.PathEscape(model) + "/environments/" + url.PathEscape(environment) + ":rollback"
	return out, c.do(ctx, http.MethodPost, path, nil, &deployerv1.RollbackRequest{Reason: reason}, out)
}

// ListServing is what each environment serves.
func (c *Client) ListServing(ctx context.Context, model string) (*deployerv1.ListServingResponse, error) {
	q := url.Values{}
	setIf(q, "model", model)
	out := &deployerv1.ListServingResponse{}
	return out, c.do(ctx, http.MethodGet, "/v1/serving", q, nil, out)
}

func deploymentPath(deployment string) string { return "/v1/deployments/" + url.PathEscape(deployment) }
