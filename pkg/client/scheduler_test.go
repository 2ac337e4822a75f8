package client

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	schedulerv1 "github.com/gyreml/gyre/pkg/pb/gyre/scheduler/v1"
)

func TestSchedulerMethodsCallTheGatewayPaths(t *testing.T) {
	rec := &recorder{answer: `{}`}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	c := New(srv.URL, WithActor("ana"))
	ctx := context.Background()

	cases := []struct {
		name                      string
		call                      func() error
		method, path, query, body string
	}{
		{"SubmitJob", func() error {
			_, err := c.SubmitJob(ctx, &schedulerv1.SubmitJobRequest{Pipeline: "credit", DatasetVersion: 3, Priority: 5, CodeRef: "git:abc", IdempotencyKey: "k1"})
			return err
		}, "POST", "/v1/pipelines/credit/jobs", "", `{"pipeline":"credit","datasetVersion":"3","priority":5,"codeRef":"git:abc","idempotencyKey":"k1"}`},
		{"GetJob", func() error { _, err := c.GetJob(ctx, "j-1"); return err }, "GET", "/v1/jobs/j-1", "", ""},
		{"ListJobs", func() error {
			_, err := c.ListJobs(ctx, &schedulerv1.ListJobsRequest{Pipeline: "credit", State: schedulerv1.JobState_JOB_STATE_RUNNING, PageSize: 50, PageToken: "t"})
			return err
		}, "GET", "/v1/jobs", "page_size=50&page_token=t&pipeline=credit&state=JOB_STATE_RUNNING", ""},
		{"ListJobs unfiltered", func() error { _, err := c.ListJobs(ctx, nil); return err }, "GET", "/v1/jobs", "", ""},
		{"CancelJob", func() error {
			_, err := c.CancelJob(ctx, &schedulerv1.CancelJobRequest{Job: "j-1", Reason: "wrong data"})
			return err
		}, "POST", "/v1/jobs/j-1:cancel", "", `{"job":"j-1","reason":"wrong data"}`},
		{"ListWorkers", func() error { _, err := c.ListWorkers(ctx); return err }, "GET", "/v1/workers", "", ""},
		{"FollowLogs", func() error {
			return c.FollowLogs(ctx, "j-1", 4, true, func(*schedulerv1.LogLine) error { return nil })
		},
			"GET", "/v1/jobs/j-1/logs", "after_seq=4&follow=true", ""},
		{"FollowLogs from the start, once", func() error {
			return c.FollowLogs(ctx, "j-1", 0, false, func(*schedulerv1.LogLine) error { return nil })
		},
			"GET", "/v1/jobs/j-1/logs", "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); err != nil {
				t.Fatal(err)
			}
			got := rec.last()
			if got.method != tc.method || got.path != tc.path || got.query != tc.query {
				t.Fatalf("sent %s %s?%s, want %s %s?%s", got.method, got.path, got.query, tc.method, tc.path, tc.query)
			}
			if tc.body != "" {
				assertSameJSON(t, got.body, tc.body)
			} else if got.body != "" {
				t.Fatalf("unexpected body %q", got.body)
			}
			if got.header.Get("X-Gyre-Actor") != "ana" {
				t.Fatalf("X-Gyre-Actor = %q", got.header.Get("X-Gyre-Actor"))
			}
		})
	}
}

func TestAllJobsKeepsTheFiltersOnEveryPage(t *testing.T) {
	var queries []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		queries = append(queries, r.URL.RawQuery)
		if r.URL.Query().Get("page_token") == "" {
			_, _ = io.WriteString(w, `{"jobs":[{"id":"b"},{"id":"a"}],"nextPageToken":"p2"}`)
			return
		}
		_, _ = io.WriteString(w, `{"jobs":[{"id":"c","state":"JOB_STATE_FAILED"}]}`)
	}))
	defer srv.Close()
	jobs, err := New(srv.URL).AllJobs(context.Background(), &schedulerv1.ListJobsRequest{Pipeline: "credit", State: schedulerv1.JobState_JOB_STATE_FAILED})
	if err != nil || len(jobs) != 3 || jobs[2].GetState() != schedulerv1.JobState_JOB_STATE_FAILED {
		t.Fatalf("AllJobs = %v, %v", jobs, err)
	}
	if want := "page_token=p2&pipeline=credit&state=JOB_STATE_FAILED"; len(queries) != 2 || queries[1] != want {
		t.Fatalf("queries = %q, want the second to be %q", queries, want)
	}
}

// logLine is one line as grpc-gateway streams it.
func logLine(seq int, text string) string {
	return `{"result":{"seq":"` + string(rune('0'+seq)) + `","attempt":1,"stream":"stdout","text":"` + text + `","time":"2026-01-02T03:04:05Z"}}` + "\n"
}

// A followed job's lines must reach the caller as the server writes them,
// not when the job ends.
func TestFollowLogsDeliversEachLineAsItComes(t *testing.T) {
	next := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		for i, text := range []string{"loading data", "iteration 1", "done"} {
			if i > 0 {
				<-next // the client has seen the previous line
			}
			_, _ = io.WriteString(w, logLine(i+1, text))
			w.(http.Flusher).Flush()
		}
	}))
	defer srv.Close()
	var got []string
	err := New(srv.URL).FollowLogs(context.Background(), "j-1", 0, true, func(l *schedulerv1.LogLine) error {
		got = append(got, l.GetText())
		if l.GetSeq() < 3 {
			next <- struct{}{}
		}
		if l.GetAttempt() != 1 || l.GetStream() != "stdout" || l.GetTime().AsTime().Year() != 2026 {
			t.Errorf("decoded %v", l)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, "|") != "loading data|iteration 1|done" {
		t.Fatalf("lines = %q", got)
	}
}

// A job waits in the queue as long as it waits: the client's timeout, meant
// for single calls, must not cut a followed stream.
func TestFollowLogsOutlivesTheClientTimeout(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(300 * time.Millisecond)
		_, _ = io.WriteString(w, logLine(1, "started"))
	}))
	defer srv.Close()
	c := New(srv.URL, WithHTTPClient(&http.Client{Timeout: 50 * time.Millisecond}))
	n := 0
	if err := c.FollowLogs(context.Background(), "j-1", 0, true, func(*schedulerv1.LogLine) error { n++; return nil }); err != nil || n != 1 {
		t.Fatalf("FollowLogs = %v after %d lines", err, n)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := c.FollowLogs(ctx, "j-1", 0, true, func(*schedulerv1.LogLine) error { return nil }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the context's deadline", err)
	}
}

func TestFollowLogsErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-Id", "req-9")
		switch r.URL.Path {
		case "/v1/jobs/midstream/logs":
			_, _ = io.WriteString(w, logLine(1, "loading data"))
			_, _ = io.WriteString(w, `{"error":{"code":13,"message":"read logs: connection reset","details":[]}}`+"\n")
		case "/v1/jobs/missing/logs":
			// grpc-gateway's form, when the stream fails before its first line.
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"error":{"code":5,"message":"job \"missing\" not found"}}`+"\n")
		case "/v1/jobs/bad/logs":
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"error":{"code":3,"message":"validation error","details":[
				{"@type":"type.googleapis.com/google.rpc.BadRequest","fieldViolations":[{"field":"after_seq","description":"must be >= 0"}]}]}}`)
		case "/v1/jobs/gyre/logs":
			// Gyre's own error body, from a route the gateway did not serve.
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"error":{"code":"UNAVAILABLE","httpStatus":503,"message":"draining"}}`)
		default:
			_, _ = io.WriteString(w, logLine(1, "a")+logLine(2, "b"))
		}
	}))
	defer srv.Close()
	c := New(srv.URL)
	ctx := context.Background()

	var lines int
	err := c.FollowLogs(ctx, "midstream", 0, true, func(*schedulerv1.LogLine) error { lines++; return nil })
	if !HasCode(err, "INTERNAL") || err.Error() != "read logs: connection reset" || lines != 1 {
		t.Fatalf("mid-stream: err = %v after %d lines", err, lines)
	}
	var ae *APIError
	if errors.As(err, &ae); ae.HTTPStatus != 500 || ae.RequestID != "req-9" {
		t.Fatalf("mid-stream: decoded %+v", ae)
	}

	err = c.FollowLogs(ctx, "missing", 0, true, func(*schedulerv1.LogLine) error { return nil })
	if !HasCode(err, "NOT_FOUND") || err.Error() != `job "missing" not found` {
		t.Fatalf("before the first line: err = %v", err)
	}

	err = c.FollowLogs(ctx, "bad", 0, true, func(*schedulerv1.LogLine) error { return nil })
	if !errors.As(err, &ae) || ae.Code != "INVALID_ARGUMENT" || len(ae.Fields) != 1 || ae.Fields[0].Field != "after_seq" {
		t.Fatalf("field violations: err = %#v", err)
	}

	err = c.FollowLogs(ctx, "gyre", 0, true, func(*schedulerv1.LogLine) error { return nil })
	if !HasCode(err, "UNAVAILABLE") || err.Error() != "draining" {
		t.Fatalf("gyre error body: err = %v", err)
	}

	stop := errors.New("enough")
	lines = 0
	err = c.FollowLogs(ctx, "two-lines", 0, false, func(*schedulerv1.LogLine) error { lines++; return stop })
	if !errors.Is(err, stop) || lines != 1 {
		t.Fatalf("fn's error: err = %v after %d lines", err, lines)
	}
}
