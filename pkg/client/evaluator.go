package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	evaluatorv1 "github.com/gyreml/gyre/pkg/pb/gyre/evaluator/v1"
)

// The methods below mirror EvaluatorService; paths follow proto/gateway.yaml.

// Evaluate queues an evaluation of a model version (registered versions are
// evaluated on their own; this asks again, e.g. after the gates changed).
func (c *Client) Evaluate(ctx context.Context, model string, version int64) (*evaluatorv1.Evaluation, error) {
	out := &evaluatorv1.Evaluation{}
	path := "/v1/models/" + url.PathEscape(model) + "/versions/" + strconv.FormatInt(version, 10) + ":evaluate"
	// The path carries the whole request; the gateway still wants a JSON body.
	return out, c.do(ctx, http.MethodPost, path, nil, &evaluatorv1.EvaluateRequest{}, out)
}

func (c *Client) GetEvaluation(ctx context.Context, evaluation string) (*evaluatorv1.Evaluation, error) {
	out := &evaluatorv1.Evaluation{}
	return out, c.do(ctx, http.MethodGet, evaluationPath(evaluation), nil, nil, out)
}

// ListEvaluations returns evaluations newest first, of one model when req.Model is set.
func (c *Client) ListEvaluations(ctx context.Context, req *evaluatorv1.ListEvaluationsRequest) (*evaluatorv1.ListEvaluationsResponse, error) {
	q := paging(req.GetPageSize(), req.GetPageToken())
	setIf(q, "model", req.GetModel())
	out := &evaluatorv1.ListEvaluationsResponse{}
	return out, c.do(ctx, http.MethodGet, "/v1/evaluations", q, nil, out)
}

// AllEvaluations walks every page of ListEvaluations.
func (c *Client) AllEvaluations(ctx context.Context, req *evaluatorv1.ListEvaluationsRequest) ([]*evaluatorv1.Evaluation, error) {
	req = cloneOrNew(req)
	return allPages(req.GetPageToken(), func(token string) ([]*evaluatorv1.Evaluation, string, error) {
		req.PageToken = token
		resp, err := c.ListEvaluations(ctx, req)
		return resp.GetEvaluations(), resp.GetNextPageToken(), err
	})
}

// GetEvaluationReport returns an ended evaluation's full report: its JSON and
// the self-contained HTML page.
func (c *Client) GetEvaluationReport(ctx context.Context, evaluation string) (*evaluatorv1.EvaluationReport, error) {
	out := &evaluatorv1.EvaluationReport{}
	return out, c.do(ctx, http.MethodGet, evaluationPath(evaluation)+"/report", nil, nil, out)
}

func evaluationPath(evaluation string) string { return "/v1/evaluations/" + url.PathEscape(evaluation) }
