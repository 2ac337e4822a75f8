package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	monitorv1 "github.com/gyreml/gyre/pkg/pb/gyre/monitor/v1"
)

func TestReadFeedbackFiles(t *testing.T) {
	dir := t.TempDir()
	csvPath := filepath.Join(dir, "labels.csv")
	if err := os.WriteFile(csvPath, []byte("prediction_id,row,label,value\np1,,yes,\np2,3,,4.5\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := readFeedbackFile(csvPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].GetPredictionId() != "p1" || got[0].GetLabel() != "yes" || got[1].GetRow() != 3 || got[1].GetValue() != 4.5 {
		t.Fatalf("csv = %v", got)
	}
	jsonl := filepath.Join(dir, "labels.jsonl")
	if err := os.WriteFile(jsonl, []byte(`{"predictionId": "p1", "label": "no"}`+"\n\n"+`{"prediction_id": "p2", "row": 1, "value": 2}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err = readFeedbackFile(jsonl); err != nil || len(got) != 2 || got[0].GetLabel() != "no" || got[1].GetPredictionId() != "p2" || got[1].GetValue() != 2 {
		t.Fatalf("jsonl = %v, %v", got, err)
	}
	for name, content := range map[string]string{
		"no-id.csv":    "id,label\np1,yes\n",
		"no-truth.csv": "prediction_id,label\np1,\n",
		"bad.jsonl":    `{"predictionId": "p1"}` + "\n",
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := readFeedbackFile(p); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// fakeMonitor answers the monitor's REST paths with canned responses and
// records the requests.
func fakeMonitor(t *testing.T) (*httptest.Server, func() []*http.Request, func() []string) {
	var mu sync.Mutex
	var reqs []*http.Request
	var bodies []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		reqs, bodies = append(reqs, r), append(bodies, string(body))
		mu.Unlock()
		var out []byte
		switch {
		case r.URL.Path == "/v1/models/churn/drift":
			out, _ = protojson.Marshal(&monitorv1.GetDriftSeriesResponse{Points: []*monitorv1.DriftPoint{
				{Version: 3, Environment: "production", Feature: "tenure", Method: "psi", Score: 0.42, Samples: 300, Alerting: true, Threshold: 0.2,
					WindowStart: timestamppb.Now()},
				{Version: 3, Environment: "production", Feature: "tenure", Method: "ks", Score: 0.3, PValue: f64ptr(1e-9), Samples: 300,
					WindowStart: timestamppb.Now()},
			}})
		case r.URL.Path == "/v1/feedback":
			out, _ = protojson.Marshal(&monitorv1.SubmitFeedbackResponse{Accepted: 1})
		case r.URL.Path == "/v1/alerts":
			out, _ = protojson.Marshal(&monitorv1.ListAlertsResponse{Alerts: []*monitorv1.Alert{{Id: "a1", Model: "churn", ModelVersion: 3,
				Kind: "drift", Rule: "psi(tenure)", State: monitorv1.AlertState_ALERT_STATE_FIRING, Value: 0.42, Threshold: 0.2, LastValue: 0.42}}})
		default:
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(out)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []*http.Request {
			mu.Lock()
			defer mu.Unlock()
			return append([]*http.Request(nil), reqs...)
		}, func() []string {
			mu.Lock()
			defer mu.Unlock()
			return append([]string(nil), bodies...)
		}
}

func f64ptr(x float64) *float64 { return &x }

func TestMonitorVerbs(t *testing.T) {
	srv, reqs, bodies := fakeMonitor(t)

	out := mustGyre(t, "--server", srv.URL, "drift", "churn", "--feature", "tenure", "--version", "3", "--since", "2h")
	if !strings.Contains(out, "tenure") || !strings.Contains(out, "0.42") || !strings.Contains(out, "EXCEEDED") || strings.Contains(out, "ks") {
		t.Fatalf("drift table:\n%s", out)
	}
	q := reqs()[0].URL.Query()
	if q.Get("feature") != "tenure" || q.Get("version") != "3" || q.Get("since") == "" {
		t.Fatalf("drift query = %v", q)
	}
	if out = mustGyre(t, "--server", srv.URL, "drift", "churn", "--all", "-o", "json"); !strings.Contains(out, `"pValue": 1e-9`) {
		t.Fatalf("drift --all -o json:\n%s", out)
	}

	if out = mustGyre(t, "--server", srv.URL, "feedback", "pred-1", "yes", "--row", "2"); !strings.Contains(out, "1 accepted") {
		t.Fatalf("feedback: %s", out)
	}
	var sent monitorv1.SubmitFeedbackRequest
	b := bodies()
	if err := protojson.Unmarshal([]byte(b[len(b)-1]), &sent); err != nil || len(sent.GetFeedback()) != 1 ||
		sent.GetFeedback()[0].GetRow() != 2 || sent.GetFeedback()[0].GetLabel() != "yes" {
		t.Fatalf("feedback body %s (%v)", b[len(b)-1], err)
	}

	out = mustGyre(t, "--server", srv.URL, "get", "alerts", "--model", "churn", "--firing")
	if !strings.Contains(out, "psi(tenure)") || !strings.Contains(out, "firing") || !strings.Contains(out, "churn@3") {
		t.Fatalf("get alerts:\n%s", out)
	}
	r := reqs()
	if q := r[len(r)-1].URL.Query(); q.Get("state") != "ALERT_STATE_FIRING" || q.Get("model") != "churn" {
		t.Fatalf("alerts query = %v", q)
	}
}
