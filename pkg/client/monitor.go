package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	monitorv1 "github.com/gyreml/gyre/pkg/pb/gyre/monitor/v1"
)

// The methods below mirror MonitorService; paths follow proto/gateway.yaml.

// SubmitFeedback sends ground truth for logged predictions (at most 10000
// per call): a label for a classifier, a value for a regression model.
func (c *Client) SubmitFeedback(ctx context.Context, feedback []*monitorv1.Feedback) (*monitorv1.SubmitFeedbackResponse, error) {
	out := &monitorv1.SubmitFeedbackResponse{}
	return out, c.do(ctx, http.MethodPost, "/v1/feedback", nil, &monitorv1.SubmitFeedbackRequest{Feedback: feedback}, out)
}

// ListAlerts returns alerts newest first, of one model and state when set.
func (c *Client) ListAlerts(ctx context.Context, req *monitorv1.ListAlertsRequest) (*monitorv1.ListAlertsResponse, error) {
	q := paging(req.GetPageSize(), req.GetPageToken())
	setIf(q, "model", req.GetModel())
	if req.GetState() != monitorv1.AlertState_ALERT_STATE_UNSPECIFIED {
		q.Set("state", req.GetState().String())
	}
	out := &monitorv1.ListAlertsResponse{}
	return out, c.do(ctx, http.MethodGet, "/v1/alerts", q, nil, out)
}

// AllAlerts walks every page of ListAlerts.
func (c *Client) AllAlerts(ctx context.Context, req *monitorv1.ListAlertsRequest) ([]*monitorv1.Alert, error) {
	req = cloneOrNew(req)
	return allPages(req.GetPageToken(), func(token string) ([]*monitorv1.Alert, string, error) {
		req.PageToken = token
		resp, err := c.ListAlerts(ctx, req)
		return resp.GetAlerts(), resp.GetNextPageToken(), err
	})
}

// GetDriftSeries returns every drift score of the model's windows since
// req.Since (default: the last 24 hours), narrowed by the other fields.
func (c *Client) GetDriftSeries(ctx context.Context, req *monitorv1.GetDriftSeriesRequest) (*monitorv1.GetDriftSeriesResponse, error) {
	q := url.Values{}
	setInt(q, "version", req.GetVersion())
	setIf(q, "feature", req.GetFeature())
	setIf(q, "method", req.GetMethod())
	setIf(q, "environment", req.GetEnvironment())
	if req.GetSince() != nil {
		q.Set("since", req.GetSince().AsTime().Format(time.RFC3339Nano))
	}
	out := &monitorv1.GetDriftSeriesResponse{}
	return out, c.do(ctx, http.MethodGet, modelPath(req.GetModel())+"/drift", q, nil, out)
}

// GetPerformanceSeries returns the model's live metrics per window.
func (c *Client) GetPerformanceSeries(ctx context.Context, req *monitorv1.GetPerformanceSeriesRequest) (*monitorv1.GetPerformanceSeriesResponse, error) {
	q := url.Values{}
	setInt(q, "version", req.GetVersion())
	setIf(q, "metric", req.GetMetric())
	setIf(q, "environment", req.GetEnvironment())
	if req.GetSince() != nil {
		q.Set("since", req.GetSince().AsTime().Format(time.RFC3339Nano))
	}
	out := &monitorv1.GetPerformanceSeriesResponse{}
	return out, c.do(ctx, http.MethodGet, modelPath(req.GetModel())+"/performance", q, nil, out)
}

// CompareVersions compares two versions' traffic in an environment
// (default production) since req.Since (default: the last hour).
func (c *Client) CompareVersions(ctx context.Context, req *monitorv1.CompareVersionsRequest) (*monitorv1.CompareVersionsResponse, error) {
	q := url.Values{}
	setIf(q, "environment", req.GetEnvironment())
	setInt(q, "baselineVersion", req.GetBaselineVersion())
	setInt(q, "candidateVersion", req.GetCandidateVersion())
	if req.GetSince() != nil {
		q.Set("since", req.GetSince().AsTime().Format(time.RFC3339Nano))
	}
	out := &monitorv1.CompareVersionsResponse{}
	return out, c.do(ctx, http.MethodGet, modelPath(req.GetModel())+"/compare", q, nil, out)
}

// ListWindows returns the model's windows, newest first.
func (c *Client) ListWindows(ctx context.Context, req *monitorv1.ListWindowsRequest) (*monitorv1.ListWindowsResponse, error) {
	q := paging(req.GetPageSize(), req.GetPageToken())
	setInt(q, "version", req.GetVersion())
	setIf(q, "environment", req.GetEnvironment())
	out := &monitorv1.ListWindowsResponse{}
	return out, c.do(ctx, http.MethodGet, modelPath(req.GetModel())+"/windows", q, nil, out)
}

func setInt(q url.Values, key string, v int64) {
	if v != 0 {
		q.Set(key, strconv.FormatInt(v, 10))
	}
}
