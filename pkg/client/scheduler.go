package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"

	schedulerv1 "github.com/gyreml/gyre/pkg/pb/gyre/scheduler/v1"
)

// The methods below mirror SchedulerService; paths follow proto/gateway.yaml.

// SubmitJob queues a training job for req.Pipeline.
func (c *Client) SubmitJob(ctx context.Context, req *schedulerv1.SubmitJobRequest) (*schedulerv1.Job, error) {
	out := &schedulerv1.Job{}
	return out, c.do(ctx, http.MethodPost, "/v1/pipelines/"+url.PathEscape(req.GetPipeline())+"/jobs", nil, req, out)
}

func (c *Client) GetJob(ctx context.Context, job string) (*schedulerv1.Job, error) {
	out := &schedulerv1.Job{}
	return out, c.do(ctx, http.MethodGet, jobPath(job), nil, nil, out)
}

// ListJobs returns jobs newest first.
func (c *Client) ListJobs(ctx context.Context, req *schedulerv1.ListJobsRequest) (*schedulerv1.ListJobsResponse, error) {
	q := paging(req.GetPageSize(), req.GetPageToken())
	setIf(q, "pipeline", req.GetPipeline())
	if req.GetState() != schedulerv1.JobState_JOB_STATE_UNSPECIFIED {
		q.Set("state", req.GetState().String())
	}
	out := &schedulerv1.ListJobsResponse{}
	return out, c.do(ctx, http.MethodGet, "/v1/jobs", q, nil, out)
}

// AllJobs walks every page of ListJobs.
func (c *Client) AllJobs(ctx context.Context, req *schedulerv1.ListJobsRequest) ([]*schedulerv1.Job, error) {
	req = cloneOrNew(req)
	return allPages(req.GetPageToken(), func(token string) ([]*schedulerv1.Job, string, error) {
		req.PageToken = token
		resp, err := c.ListJobs(ctx, req)
		return resp.GetJobs(), resp.GetNextPageToken(), err
	})
}

// CancelJob cancels a queued job at once; a running one stops at its
// worker's next heartbeat (the returned job has CancelRequested set).
func (c *Client) CancelJob(ctx context.Context, req *schedulerv1.CancelJobRequest) (*schedulerv1.Job, error) {
	out := &schedulerv1.Job{}
	return out, c.do(ctx, http.MethodPost, jobPath(req.GetJob())+":cancel", nil, req, out)
}

func (c *Client) ListWorkers(ctx context.Context) (*schedulerv1.ListWorkersResponse, error) {
	out := &schedulerv1.ListWorkersResponse{}
	return out, c.do(ctx, http.MethodGet, "/v1/workers", nil, nil, out)
}

// FollowLogs calls fn with each log line of job after sequence number
// afterSeq, in order. Without follow it returns once the lines written so
// far are read; with follow, when the job has ended and its last line was
// read. An error from fn stops the stream and is returned as it is.
//
// The stream is bounded by ctx alone, not by the client's timeout, since a
// job takes as long as it takes. A server that stops streaming early (a
// restart, a proxy's idle timeout) ends it without error: callers that must
// see the end check the job's state and follow again from the last seq.
func (c *Client) FollowLogs(ctx context.Context, job string, afterSeq int64, follow bool, fn func(*schedulerv1.LogLine) error) error {
	q := url.Values{}
	if follow {
		q.Set("follow", "true")
	}
	if afterSeq > 0 {
		q.Set("after_seq", strconv.FormatInt(afterSeq, 10))
	}
	u := c.base + jobPath(job) + "/logs"
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("logs of job %s: %w", job, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("X-Request-Id", uuid.NewString())
	req.Header.Set("X-Gyre-Actor", c.actor)
	h := *c.http
	h.Timeout = 0
	// The server sends its headers with the first line, which may come only
	// when a queued job starts.
	resp, err := h.Do(req)
	if err != nil {
		return fmt.Errorf("logs of job %s: %w", job, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err := streamError(resp, raw); err != nil {
			return err
		}
		return decodeError(resp, raw)
	}
	dec := json.NewDecoder(resp.Body)
	for {
		var chunk struct {
			Result json.RawMessage `json:"result"`
			Error  *gatewayStatus  `json:"error"`
		}
		if err := dec.Decode(&chunk); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("read logs of job %s: %w", job, err)
		}
		if chunk.Error != nil {
			return chunk.Error.apiError(runtime.HTTPStatusFromCode(codes.Code(chunk.Error.Code)), resp.Header.Get("X-Request-Id"))
		}
		if chunk.Result == nil {
			continue // neither a line nor an error: something newer servers send
		}
		line := &schedulerv1.LogLine{}
		if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(chunk.Result, line); err != nil {
			return fmt.Errorf("decode a log line of job %s: %w", job, err)
		}
		if err := fn(line); err != nil {
			return err
		}
	}
}

// gatewayStatus is how grpc-gateway writes an error in a stream: the
// google.rpc.Status with a numeric code, not Gyre's error body.
type gatewayStatus struct {
	Code    int32  `json:"code"`
	Message string `json:"message"`
	Details []struct {
		Type            string           `json:"@type"`
		FieldViolations []FieldViolation `json:"fieldViolations"`
	} `json:"details"`
}

func (s *gatewayStatus) apiError(httpStatus int, requestID string) *APIError {
	e := &APIError{Code: code.Code(s.Code).String(), HTTPStatus: httpStatus, Message: s.Message, RequestID: requestID}
	for _, d := range s.Details {
		if strings.HasSuffix(d.Type, "/google.rpc.BadRequest") {
			e.Fields = append(e.Fields, d.FieldViolations...)
		}
	}
	return e
}

// streamError decodes the status a stream fails with before its first
// line; nil when raw is Gyre's own error body (whose code is a name, which
// does not decode as a number), left to decodeError.
func streamError(resp *http.Response, raw []byte) error {
	var body struct {
		Error *gatewayStatus `json:"error"`
	}
	if json.Unmarshal(raw, &body) != nil || body.Error == nil || body.Error.Message == "" {
		return nil
	}
	return body.Error.apiError(resp.StatusCode, resp.Header.Get("X-Request-Id"))
}

func jobPath(job string) string { return "/v1/jobs/" + url.PathEscape(job) }
