package inference

// BenchmarkREST measures predictions through the OIP v2 REST handler
// against a bare net/http handler that decodes the same request with
// encoding/json into a struct of the same shape and encodes an answer of
// the same shape (no model, no routing, no stats, metrics or logging), in
// the same run, over real HTTP on loopback (httptest servers), with a
// fixed-concurrency load generator in this process.
//
// The load generator and the server share the machine's cores (GOMAXPROCS),
// so the absolute rates are lower than with a separate client; the ratios
// are the result:
//
//	throughput_ratio  Gyre's requests/s over the bare handler's (goal >= 0.8)
//	p99_added_ms      Gyre's p99 latency minus the bare handler's (goal <= 0.5)
//
// Run: go test -run '^$' -bench BenchmarkREST -benchtime 40000x ./pkg/inference
// (each op is one request to each handler).

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	inferencev1 "github.com/gyreml/gyre/pkg/pb/gyre/inference/v1"
)

// benchConcurrency is how many requests are in flight at once.
const benchConcurrency = 4

// The bare handler's request and answer: the protocol's shape, decoded
// and encoded by encoding/json.
type bareTensor struct {
	Name     string  `json:"name"`
	Shape    []int64 `json:"shape"`
	Datatype string  `json:"datatype"`
	Data     []any   `json:"data"`
}

type bareRequest struct {
	ID         string         `json:"id,omitempty"`
	Inputs     []bareTensor   `json:"inputs"`
	Outputs    []bareTensor   `json:"outputs,omitempty"`
	Parameters map[string]any `json:"parameters,omitempty"`
}

type bareResponse struct {
	ModelName    string            `json:"model_name"`
	ModelVersion string            `json:"model_version"`
	ID           string            `json:"id"`
	Parameters   map[string]string `json:"parameters"`
	Outputs      []bareTensor      `json:"outputs"`
}

// bareHandler answers with fixed predictions of the right sizes.
func bareHandler(w http.ResponseWriter, r *http.Request) {
	var req bareRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.Inputs) == 0 {
		http.Error(w, `{"error":"bad request"}`, http.StatusBadRequest)
		return
	}
	n := len(req.Inputs[0].Data)
	labels, probs, values := make([]any, n), make([]any, 2*n), make([]any, n)
	for i := range n {
		labels[i], values[i] = "yes", 0.75
		probs[2*i], probs[2*i+1] = 0.25, 0.75
	}
	resp := bareResponse{ModelName: "credit", ModelVersion: "1", ID: req.ID, Parameters: map[string]string{"environment": "production", "role": "stable"},
		Outputs: []bareTensor{
			{Name: "label", Datatype: "BYTES", Shape: []int64{int64(n)}, Data: labels},
			{Name: "probabilities", Datatype: "FP64", Shape: []int64{int64(n), 2}, Data: probs},
			{Name: "value", Datatype: "FP64", Shape: []int64{int64(n)}, Data: values},
		}}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resp)
}

// benchPayload is a request of batch rows, one tensor per input.
func benchPayload(batch int) []byte {
	var x0, x1, color []string
	colors := []string{`"red"`, `"green"`, `"blue"`}
	for i := range batch {
		x0 = append(x0, fmt.Sprintf("%.4f", float64(i%17)/7-1))
		x1 = append(x1, fmt.Sprintf("%.4f", float64(i%5)/3))
		color = append(color, colors[i%3])
	}
	return fmt.Appendf(nil, `{"inputs":[{"name":"x0","shape":[%d],"datatype":"FP64","data":[%s]},`+
		`{"name":"x1","shape":[%d],"datatype":"FP64","data":[%s]},`+
		`{"name":"color","shape":[%d],"datatype":"BYTES","data":[%s]}]}`,
		batch, strings.Join(x0, ","), batch, strings.Join(x1, ","), batch, strings.Join(color, ","))
}

// load sends n requests with benchConcurrency in flight and returns the
// rate and each request's latency.
func load(b *testing.B, client *http.Client, url string, body []byte, n int) (perSecond float64, latencies []time.Duration) {
	latencies = make([]time.Duration, n)
	var next atomic.Int64
	var failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range benchConcurrency {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				t0 := time.Now()
				resp, err := client.Post(url, "application/json", bytes.NewReader(body))
				if err != nil {
					failed.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					failed.Add(1)
				}
				latencies[i] = time.Since(t0)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if failed.Load() > 0 {
		b.Fatalf("%d of %d requests failed", failed.Load(), n)
	}
	return float64(n) / elapsed.Seconds(), latencies
}

func p99(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)*99/100]
}

func BenchmarkREST(b *testing.B) {
	for _, batch := range []int{1, 32} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			benchREST(b, batch, false)
		})
	}
	// Every answered row logged to a JetStream server that runs in this
	// process too, on the same cores.
	b.Run("batch=1/logged", func(b *testing.B) {
		benchREST(b, 1, true)
	})
}

func benchREST(b *testing.B, batch int, logged bool) {
	var configure func(*Options)
	if logged {
		_, js := startNATS(b)
		configure = func(o *Options) { o.JS = js; o.Config.LogBuffer, o.Config.LogBatch = 65536, 512 }
	}
	s := newServer(b, configure)
	if _, err := s.SetRoute(context.Background(), &inferencev1.Route{Environment: Production, Model: "credit", Stable: fixtures.v1}, false); err != nil {
		b.Fatal(err)
	}
	gyre := httptest.NewServer(s.Handler(Production))
	defer gyre.Close()
	bare := httptest.NewServer(http.HandlerFunc(bareHandler))
	defer bare.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: benchConcurrency, MaxConnsPerHost: benchConcurrency}}
	defer client.CloseIdleConnections()
	body := benchPayload(batch)
	gyreURL, bareURL := gyre.URL+"/v2/models/credit/infer", bare.URL+"/v2/models/credit/infer"

	// Warm both (connections, pools), then alternate rounds so drift in
	// the machine's speed hits both alike.
	load(b, client, gyreURL, body, 200)
	load(b, client, bareURL, body, 200)
	const rounds = 8
	n := max(b.N/rounds, 1)
	var gyreRate, bareRate float64
	var gyreLat, bareLat []time.Duration
	b.ResetTimer()
	for range rounds {
		rate, lat := load(b, client, bareURL, body, n)
		bareRate += rate / rounds
		bareLat = append(bareLat, lat...)
		rate, lat = load(b, client, gyreURL, body, n)
		gyreRate += rate / rounds
		gyreLat = append(gyreLat, lat...)
	}
	b.StopTimer()
	gyreP99, bareP99 := p99(gyreLat), p99(bareLat)
	b.ReportMetric(gyreRate, "gyre_req/s")
	b.ReportMetric(bareRate, "bare_req/s")
	b.ReportMetric(gyreRate/bareRate, "throughput_ratio")
	b.ReportMetric(float64(gyreP99.Microseconds())/1000, "gyre_p99_ms")
	b.ReportMetric(float64(bareP99.Microseconds())/1000, "bare_p99_ms")
	b.ReportMetric(float64((gyreP99-bareP99).Microseconds())/1000, "p99_added_ms")
}

// BenchmarkHandler is the REST handler alone (no network), for its
// allocations and CPU profile.
func BenchmarkHandler(b *testing.B) {
	s := newServer(b, nil)
	if _, err := s.SetRoute(context.Background(), &inferencev1.Route{Environment: Production, Model: "credit", Stable: fixtures.v1}, false); err != nil {
		b.Fatal(err)
	}
	h := s.Handler(Production)
	body := benchPayload(1)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		w := &discardWriter{h: http.Header{}}
		for pb.Next() {
			req := httptest.NewRequest(http.MethodPost, "/v2/models/credit/infer", bytes.NewReader(body))
			clear(w.h)
			h.ServeHTTP(w, req)
			if w.code != 0 && w.code != http.StatusOK {
				b.Fatalf("status %d", w.code)
			}
		}
	})
}

type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }
