package inference

// BenchmarkVersusFastAPI measures Gyre's OIP v2 REST handler against the
// same model served the usual Python way: FastAPI + uvicorn +
// scikit-learn (testdata/fastapi_server.py: pydantic request and response
// models, an async def endpoint, one uvicorn worker, a Pipeline of
// StandardScaler, OneHotEncoder and LogisticRegression fitted at startup).
// Both models are logistic regressions fitted on the same CSV (the one
// fixtures.v1 was trained on); the benchmark checks that they answer the
// same probabilities before it measures anything.
//
// Both servers get the same requests (benchPayload) from the same load
// generator as BenchmarkREST (load: benchConcurrency requests in flight,
// keep-alive connections, loopback), for the same time, in alternating
// rounds in the same run. The load generator runs in this process and
// shares the machine's cores with whichever server is being measured
// (GOMAXPROCS is left as it is); the other server is idle meanwhile.
//
//	speedup_vs_fastapi  Gyre's requests/s over FastAPI's (goal >= 10)
//
// It skips unless /usr/bin/python3 imports fastapi, uvicorn and sklearn
// (Debian: apt-get install python3-fastapi python3-uvicorn python3-sklearn).
// GYRE_FASTAPI_WORKERS runs uvicorn with that many worker processes
// instead of one.
//
// Run: go test ./pkg/inference -run '^$' -bench VersusFastAPI -benchtime 1x
// (25-35 s on 2 cores; the measurement is timed rounds, whatever b.N is).

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	inferencev1 "github.com/gyreml/gyre/pkg/pb/gyre/inference/v1"
)

const (
	// versusRounds alternate the two servers; each server gets about
	// versusRoundTime of load in each.
	versusRounds    = 3
	versusRoundTime = 2 * time.Second
	fastapiPython   = "/usr/bin/python3"
)

func BenchmarkVersusFastAPI(b *testing.B) {
	if out, err := exec.Command(fastapiPython, "-c", "import fastapi, uvicorn, sklearn").CombinedOutput(); err != nil {
		b.Skipf("skipping: the FastAPI baseline needs %s with fastapi, uvicorn and sklearn "+
			"(apt-get install python3-fastapi python3-uvicorn python3-sklearn): %v: %s",
			fastapiPython, err, lastLine(out))
	}
	workers := 1
	if w := os.Getenv("GYRE_FASTAPI_WORKERS"); w != "" {
		var err error
		if workers, err = strconv.Atoi(w); err != nil || workers < 1 {
			b.Fatalf("GYRE_FASTAPI_WORKERS=%q: want a positive number", w)
		}
	}
	// The CSV fixtures.v1 (Gyre's builtin/logistic, all rows) was fitted on.
	csvPath := filepath.Join(b.TempDir(), "train.csv")
	if err := os.WriteFile(csvPath, []byte(trainingCSV(400, 1, false)), 0o644); err != nil {
		b.Fatal(err)
	}
	fastapiBase, setup := startFastAPI(b, csvPath, workers)
	b.Logf("FastAPI: %s; Go: GOMAXPROCS=%d on %d CPUs, load generator in this process", setup, runtime.GOMAXPROCS(0), runtime.NumCPU())

	s := newServer(b, nil)
	s.setRoute(b, &inferencev1.Route{Environment: Production, Model: "credit", Stable: fixtures.v1})
	gyre := httptest.NewServer(s.Handler(Production))
	b.Cleanup(gyre.Close)
	client := &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: benchConcurrency, MaxConnsPerHost: benchConcurrency},
	}
	b.Cleanup(client.CloseIdleConnections)
	gyreURL, fastapiURL := gyre.URL+"/v2/models/credit/infer", fastapiBase+"/v2/models/credit/infer"

	checkSameModel(b, client, gyreURL, fastapiURL)

	for _, batch := range []int{1, 32} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			body := benchPayload(batch)
			// Warm both, and size each server's rounds from its warm-up rate.
			requests := func(url string) int {
				load(b, client, url, body, 100)
				rate, _ := load(b, client, url, body, 300)
				return max(int(rate*versusRoundTime.Seconds()), 100)
			}
			nGyre, nFastAPI := requests(gyreURL), requests(fastapiURL)
			var gyreRate, fastapiRate float64
			var gyreLat, fastapiLat []time.Duration
			b.ResetTimer()
			for range versusRounds {
				rate, lat := load(b, client, fastapiURL, body, nFastAPI)
				fastapiRate += rate / versusRounds
				fastapiLat = append(fastapiLat, lat...)
				rate, lat = load(b, client, gyreURL, body, nGyre)
				gyreRate += rate / versusRounds
				gyreLat = append(gyreLat, lat...)
			}
			b.StopTimer()
			b.ReportMetric(gyreRate, "gyre_req/s")
			b.ReportMetric(fastapiRate, "fastapi_req/s")
			b.ReportMetric(gyreRate/fastapiRate, "speedup_vs_fastapi")
			b.ReportMetric(float64(p99(gyreLat).Microseconds())/1000, "gyre_p99_ms")
			b.ReportMetric(float64(p99(fastapiLat).Microseconds())/1000, "fastapi_p99_ms")
		})
	}
}

// lastLine is the last non-empty line of a command's output (a Python
// traceback's error).
func lastLine(out []byte) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1]
}

// startFastAPI runs testdata/fastapi_server.py and waits until its model
// is fitted and it answers; cleanup stops it. It returns the server's base
// URL and the line the server printed (port, workers, event loop, parser).
func startFastAPI(b *testing.B, csvPath string, workers int) (base, setup string) {
	b.Helper()
	cmd := exec.Command(fastapiPython, "fastapi_server.py", strconv.Itoa(workers))
	cmd.Dir = "testdata"
	cmd.Env = append(os.Environ(), "TRAIN_CSV="+csvPath, "PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1",
		"EXIT_ON_STDIN_EOF=1")
	// The server exits when this pipe closes, so it does not outlive a
	// test process that dies before its cleanup (a timeout, a signal).
	if _, err := cmd.StdinPipe(); err != nil {
		b.Fatal(err)
	}
	stderrPath := filepath.Join(b.TempDir(), "fastapi.stderr")
	stderr, err := os.Create(stderrPath)
	if err != nil {
		b.Fatal(err)
	}
	defer stderr.Close()
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	b.Cleanup(func() {
		// SIGINT: uvicorn shuts down (and stops its workers); kill it if not.
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	fail := func(format string, args ...any) {
		b.Helper()
		_ = cmd.Process.Kill()
		<-exited
		log, _ := os.ReadFile(stderrPath)
		b.Fatalf("FastAPI server: "+format+"\nits stderr:\n%s", append(args, log)...)
	}

	firstLine := make(chan string, 1)
	go func() {
		r := bufio.NewReader(stdout)
		line, _ := r.ReadString('\n')
		firstLine <- strings.TrimSpace(line)
		_, _ = io.Copy(io.Discard, r)
	}()
	deadline := time.After(60 * time.Second)
	select {
	case setup = <-firstLine:
	case <-deadline:
		fail("no port after 60 s")
	}
	var port int
	if _, err := fmt.Sscanf(setup, "PORT %d", &port); err != nil {
		fail("first line %q: want PORT <n>", setup)
	}
	base = fmt.Sprintf("http://127.0.0.1:%d", port)
	poll := &http.Client{Timeout: time.Second}
	for {
		resp, err := poll.Get(base + "/v2/health/ready")
		if err == nil {
			var ready struct{ Ready bool }
			_ = json.NewDecoder(resp.Body).Decode(&ready)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && ready.Ready {
				poll.CloseIdleConnections()
				return base, setup
			}
		}
		select {
		case <-exited:
			fail("exited before it was ready")
		case <-deadline:
			fail("not ready after 60 s")
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// checkSameModel fails the benchmark unless both servers answer a batch
// with the same labels and probabilities (to 1e-4: two optimisers).
func checkSameModel(b *testing.B, client *http.Client, gyreURL, fastapiURL string) {
	b.Helper()
	type answer struct {
		Outputs []struct {
			Name  string  `json:"name"`
			Shape []int64 `json:"shape"`
			Data  []any   `json:"data"`
		} `json:"outputs"`
	}
	infer := func(url string) map[string][]any {
		resp, err := client.Post(url, "application/json", bytes.NewReader(benchPayload(32)))
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var a answer
		if err := json.Unmarshal(raw, &a); err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("%s: %s: %s (%v)", url, resp.Status, raw, err)
		}
		out := map[string][]any{}
		for _, o := range a.Outputs {
			out[o.Name] = o.Data
		}
		return out
	}
	g, f := infer(gyreURL), infer(fastapiURL)
	for _, name := range []string{"label", "probabilities", "value"} {
		if len(g[name]) == 0 || len(g[name]) != len(f[name]) {
			b.Fatalf("output %s: Gyre answered %d values, FastAPI %d", name, len(g[name]), len(f[name]))
		}
	}
	if fmt.Sprint(g["label"]) != fmt.Sprint(f["label"]) {
		b.Fatalf("labels differ:\nGyre    %v\nFastAPI %v", g["label"], f["label"])
	}
	var worst float64
	for i, v := range g["probabilities"] {
		gv, _ := v.(float64)
		fv, _ := f["probabilities"][i].(float64)
		worst = max(worst, math.Abs(gv-fv))
	}
	if worst > 1e-4 {
		b.Fatalf("the models differ: probabilities up to %.2g apart", worst)
	}
	b.Logf("same model: 32 rows, same labels, probabilities at most %.2g apart", worst)
}
