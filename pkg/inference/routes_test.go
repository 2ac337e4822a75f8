package inference

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gyreml/gyre/pkg/config"
	inferencev1 "github.com/gyreml/gyre/pkg/pb/gyre/inference/v1"
	"github.com/gyreml/gyre/pkg/sketch"
)

// TestHotSwapFailsNoRequest hammers the server over real HTTP while the
// route flips between two versions (and a canary comes and goes).
func TestHotSwapFailsNoRequest(t *testing.T) {
	s := newServer(t, nil)
	s.setRoute(t, &inferencev1.Route{Environment: Production, Model: "credit", Stable: fixtures.v1})
	srv := httptest.NewServer(s.Handler(Production))
	defer srv.Close()
	client := srv.Client()
	client.Transport.(*http.Transport).MaxIdleConnsPerHost = 16

	var ok, failed atomic.Int64
	var mu sync.Mutex
	versions := map[string]int{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Post(srv.URL+"/v2/models/credit/infer", "application/json", strings.NewReader(threeRows))
				if err != nil {
					failed.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					failed.Add(1)
					continue
				}
				ok.Add(1)
				mu.Lock()
				versions[resp.Header.Get(HeaderModelVersion)]++
				mu.Unlock()
			}
		})
	}
	routes := []*inferencev1.Route{
		{Environment: Production, Model: "credit", Stable: fixtures.v2},
		{Environment: Production, Model: "credit", Stable: fixtures.v1, Canary: fixtures.v2, CanaryWeight: 50},
		{Environment: Production, Model: "credit", Stable: fixtures.v1},
	}
	for i := range 30 {
		s.setRoute(t, routes[i%len(routes)])
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if failed.Load() != 0 || ok.Load() < 100 {
		t.Errorf("%d requests failed, %d answered during the swaps", failed.Load(), ok.Load())
	}
	if versions["1"] == 0 || versions["2"] == 0 {
		t.Errorf("answers by version %v: want both", versions)
	}
	// The last route serves v1 alone: v2 has left memory.
	if n := s.store.loaded(); n != 1 {
		t.Errorf("%d bundles in memory, want 1", n)
	}
}

func TestStatsWindow(t *testing.T) {
	s := newServer(t, nil)
	route := &inferencev1.Route{Environment: Production, Model: "credit", Stable: fixtures.v1, Canary: fixtures.v2, CanaryWeight: 50}
	s.setRoute(t, route)
	h := s.Handler(Production)
	for range 40 {
		post(t, h, "/v2/models/credit/infer", threeRows)
	}
	post(t, h, "/v2/models/credit/versions/2/infer", `{"inputs":[{"name":"x0","shape":[1],"datatype":"FP64","data":[1]}]}`)
	stats, err := s.Stats(Production, "credit")
	if err != nil {
		t.Fatal(err)
	}
	var requests int64
	for _, st := range stats {
		requests += st.GetRequests()
		if st.GetRequests() == 0 || st.GetLatencyP50Ms() <= 0 || st.GetLatencyP99Ms() < st.GetLatencyP50Ms() {
			t.Errorf("%s: %v", st.GetRole(), st)
		}
		var kll sketch.KLL
		if err := kll.UnmarshalBinary(st.GetPredictionSketch()); err != nil {
			t.Fatalf("%s prediction sketch: %v", st.GetRole(), err)
		}
		// Three rows per successful request.
		if kll.Count() != 3*(st.GetRequests()-st.GetErrors()) {
			t.Errorf("%s: sketch of %d predictions for %d answered requests", st.GetRole(), kll.Count(), st.GetRequests()-st.GetErrors())
		}
		if mean := st.GetPredictionMean(); mean <= 0 || mean >= 1 || kll.Min() > mean || kll.Max() < mean {
			t.Errorf("%s: prediction mean %v outside (0, 1) or [%v, %v]", st.GetRole(), mean, kll.Min(), kll.Max())
		}
	}
	if requests != 41 || stats[1].GetErrors() != 1 || stats[1].GetErrorRate() != 1/float64(stats[1].GetRequests()) {
		t.Errorf("stats %v: want 41 requests, one canary error", stats)
	}

	// Changing the weight keeps the window; reset_stats starts a new one.
	route.CanaryWeight = 10
	s.setRoute(t, route)
	if again, _ := s.Stats(Production, "credit"); again[0].GetRequests()+again[1].GetRequests() != 41 {
		t.Errorf("stats after a weight change: %v", again)
	}
	if _, err := s.SetRoute(context.Background(), route, true); err != nil {
		t.Fatal(err)
	}
	reset, _ := s.Stats(Production, "credit")
	if len(reset) != 2 || reset[0].GetRequests() != 0 || reset[1].GetRequests() != 0 || reset[1].GetPredictionMean() != 0 {
		t.Errorf("stats after reset: %v", reset)
	}
	if _, err := s.Stats(Production, "fraud"); err == nil {
		t.Error("stats of an unserved model")
	}
}

func TestMetricsByModelVersionEnvironmentAndCode(t *testing.T) {
	s := newServer(t, nil)
	s.setRoute(t, &inferencev1.Route{Environment: Staging, Model: "credit", Stable: fixtures.v1})
	h := s.Handler(Staging)
	post(t, h, "/v2/models/credit/infer", threeRows)
	post(t, h, "/v2/models/credit/infer", threeRows)
	post(t, h, "/v2/models/credit/infer", `{"inputs":[]}`)
	post(t, h, "/v2/models/made-up/infer", threeRows)
	for _, tc := range []struct {
		labels map[string]string
		want   float64
	}{
		{map[string]string{"model": "credit", "version": "1", "environment": Staging, "code": "200"}, 2},
		{map[string]string{"model": "credit", "version": "1", "environment": Staging, "code": "400"}, 1},
		// An unknown model's name does not become a label value.
		{map[string]string{"model": "", "version": "", "environment": Staging, "code": "404"}, 1},
		{map[string]string{"model": "made-up"}, 0},
	} {
		if got := s.counter(t, "gyre_inference_requests_total", tc.labels); got != tc.want {
			t.Errorf("requests %v: %v, want %v", tc.labels, got, tc.want)
		}
	}
	families, _ := s.reg.Gather()
	var histograms int
	for _, f := range families {
		if f.GetName() == "gyre_inference_request_duration_seconds" {
			for _, m := range f.GetMetric() {
				histograms += int(m.GetHistogram().GetSampleCount())
			}
		}
	}
	if histograms != 4 {
		t.Errorf("%d durations observed, want 4", histograms)
	}
}

func TestStaticRoute(t *testing.T) {
	s := newServer(t, nil)
	ctx := context.Background()
	if err := s.SetStaticRoute(ctx, config.StaticRoute{}); err != nil || len(s.Routes()) != 0 {
		t.Fatalf("an empty static route: %v, routes %v", err, s.Routes())
	}
	err := s.SetStaticRoute(ctx, config.StaticRoute{Model: "credit", Version: 5, BundleURI: fixtures.v1.GetBundleUri(), BundleSHA256: fixtures.v1.GetBundleSha256()})
	if err != nil {
		t.Fatal(err)
	}
	routes := s.Routes()
	if len(routes) != 1 || routes[0].GetEnvironment() != Production || routes[0].GetStable().GetVersion() != 5 {
		t.Errorf("routes %v", routes)
	}
	if code, hdr, _ := post(t, s.Handler(Production), "/v2/models/credit/infer", threeRows); code != http.StatusOK || hdr.Get(HeaderModelVersion) != "5" {
		t.Errorf("static route answers %d from version %q", code, hdr.Get(HeaderModelVersion))
	}
	err = s.SetStaticRoute(ctx, config.StaticRoute{Environment: Staging, Model: "credit", Version: 1, BundleURI: fixtures.v1.GetBundleUri(), BundleSHA256: fixtures.v2.GetBundleSha256()})
	if err == nil || !strings.Contains(err.Error(), "static route staging/credit version 1") {
		t.Errorf("a static route with a wrong digest: %v", err)
	}
}

// TestOwnListeners serves each environment on its own address.
func TestOwnListeners(t *testing.T) {
	s := newServer(t, func(o *Options) {
		o.Config.ProductionAddr, o.Config.StagingAddr = "127.0.0.1:0", "127.0.0.1:0"
	})
	s.setRoute(t, &inferencev1.Route{Environment: Staging, Model: "credit", Stable: fixtures.v2})
	addr := s.Addr(Staging)
	if addr == "" || s.Addr(Production) == "" || addr == s.Addr(Production) {
		t.Fatalf("addresses %q and %q", s.Addr(Production), addr)
	}
	resp, err := http.Post("http://"+addr+"/v2/models/credit/infer", "application/json", strings.NewReader(threeRows))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get(HeaderModelVersion) != "2" {
		t.Errorf("staging listener: %d, version %q", resp.StatusCode, resp.Header.Get(HeaderModelVersion))
	}
	resp, err = http.Post("http://"+s.Addr(Production)+"/v2/models/credit/infer", "application/json", strings.NewReader(threeRows))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("production listener answers a staging-only model: %d", resp.StatusCode)
	}
	if err := s.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get("http://" + addr + "/v2/health/live"); err == nil {
		t.Error("the staging listener serves after Drain")
	}
}
