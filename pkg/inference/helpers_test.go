package inference

// Integration tests: an S3 server (devstack's gofakes3) and, where logging
// is tested, a NATS JetStream server, both inside the test process. Models
// are trained with the built-in trainers and packed as real bundles.

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	natstest "github.com/nats-io/nats-server/v2/test"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gyreml/gyre/pkg/blob"
	"github.com/gyreml/gyre/pkg/config"
	"github.com/gyreml/gyre/pkg/devstack"
	"github.com/gyreml/gyre/pkg/events"
	"github.com/gyreml/gyre/pkg/model"
	"github.com/gyreml/gyre/pkg/model/linear"
	"github.com/gyreml/gyre/pkg/model/table"
	inferencev1 "github.com/gyreml/gyre/pkg/pb/gyre/inference/v1"
)

// fixtures are shared by every test: one S3 server holding the bundles.
var fixtures struct {
	blobs *blob.Store
	// v1 and v2 are binary classifiers (x0, x1 numeric, color categorical)
	// that disagree; regression predicts a number from the same inputs;
	// numeric reads x0 and x1 only.
	v1, v2, regression, numeric *inferencev1.Target
	// tampered has a valid archive digest, but a model file that does not
	// match its manifest.
	tampered *inferencev1.Target
}

var testInputs = []model.Input{{Name: "x0", Kind: model.Numeric}, {Name: "x1", Kind: model.Numeric}, {Name: "color", Kind: model.Categorical}}

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "gyre-inference-test-*")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	s3, err := devstack.StartS3(devstack.S3Options{Dir: dir, Logger: quiet})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer s3.Stop(context.Background())
	ctx := context.Background()
	fixtures.blobs, err = blob.Open(ctx, blob.Config{Endpoint: s3.Endpoint, AccessKey: s3.AccessKey, SecretKey: s3.SecretKey, Bucket: "gyre"})
	if err == nil {
		err = buildFixtures(ctx)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "fixtures:", err)
		return 1
	}
	return m.Run()
}

// trainingCSV is n rows of x0, x1, color and the targets y (yes/no; flip
// reverses the rule) and r (a number).
func trainingCSV(n int, seed uint64, flip bool) string {
	rng := rand.New(rand.NewPCG(seed, 1))
	var b strings.Builder
	b.WriteString("x0,x1,color,y,r\n")
	colors := []string{"red", "green", "blue"}
	bump := map[string]float64{"red": 1, "green": -1, "blue": 0}
	for range n {
		x0, x1 := rng.NormFloat64(), rng.NormFloat64()
		c := colors[rng.IntN(3)]
		score := 2*x0 + x1 + bump[c] + 0.5*rng.NormFloat64()
		if flip {
			score = -score
		}
		y := "no"
		if score > 0 {
			y = "yes"
		}
		fmt.Fprintf(&b, "%.4f,%.4f,%s,%s,%.4f\n", x0, x1, c, y, 3*x0-x1+bump[c]+0.1*rng.NormFloat64())
	}
	return b.String()
}

func buildFixtures(ctx context.Context) error {
	type spec struct {
		into    **inferencev1.Target
		flip    bool
		trainer func(*table.Table, []int) (model.Model, error)
	}
	logistic := func(inputs []model.Input) func(*table.Table, []int) (model.Model, error) {
		return func(t *table.Table, rows []int) (model.Model, error) {
			m, _, err := linear.Logistic.Train(ctx, t, rows, nil, "y", inputs, nil, 1)
			return m, err
		}
	}
	specs := []spec{
		{&fixtures.v1, false, logistic(testInputs)},
		{&fixtures.v2, true, logistic(testInputs)},
		{&fixtures.numeric, false, logistic(testInputs[:2])},
		{&fixtures.regression, false, func(t *table.Table, rows []int) (model.Model, error) {
			m, _, err := linear.Linear.Train(ctx, t, rows, nil, "r", testInputs, nil, 1)
			return m, err
		}},
	}
	for i, sp := range specs {
		tb, err := table.ReadCSV(strings.NewReader(trainingCSV(400, uint64(i+1), sp.flip)), nil)
		if err != nil {
			return err
		}
		rows := make([]int, tb.Rows)
		for r := range rows {
			rows[r] = r
		}
		m, err := sp.trainer(tb, rows)
		if err != nil {
			return err
		}
		dir, err := os.MkdirTemp("", "gyre-bundle-*")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		if err := model.Save(dir, m, &model.Manifest{Target: "y"}); err != nil {
			return err
		}
		var packed bytes.Buffer
		if err := model.Pack(dir, &packed); err != nil {
			return err
		}
		if *sp.into, err = upload(ctx, packed.Bytes(), int64(i+1)); err != nil {
			return err
		}
		if i == 0 {
			// The same bundle with one file changed after the manifest was
			// written: its archive digest is honest, its content is not.
			raw, err := tamperedArchive(dir)
			if err != nil {
				return err
			}
			if fixtures.tampered, err = upload(ctx, raw, 9); err != nil {
				return err
			}
		}
	}
	return nil
}

func upload(ctx context.Context, raw []byte, version int64) (*inferencev1.Target, error) {
	obj, err := fixtures.blobs.PutContent(ctx, "models/test", bytes.NewReader(raw), "application/gzip")
	if err != nil {
		return nil, err
	}
	return &inferencev1.Target{Version: version, BundleUri: fixtures.blobs.URI(obj.Key), BundleSha256: obj.SHA256}, nil
}

// tamperedArchive packs dir by hand (model.Pack would refuse it) after
// changing a byte of a model file.
func tamperedArchive(dir string) ([]byte, error) {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		name, _ := filepath.Rel(dir, path)
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if name != model.ManifestFile {
			data = append(data, ' ')
		}
		if err := tw.WriteHeader(&tar.Header{Name: filepath.ToSlash(name), Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err = tw.Write(data)
		return err
	})
	if err == nil {
		err = tw.Close()
	}
	if err == nil {
		err = gz.Close()
	}
	return buf.Bytes(), err
}

// withVersion is a copy of a fixture target under another version number.
func withVersion(t *inferencev1.Target, v int64) *inferencev1.Target {
	return &inferencev1.Target{Version: v, BundleUri: t.GetBundleUri(), BundleSha256: t.GetBundleSha256()}
}

type testServer struct {
	*Server
	reg *prometheus.Registry
}

// newServer starts a server (not listening) with its own metrics registry;
// configure may set options (JS, log settings) first.
func newServer(t testing.TB, configure func(*Options)) testServer {
	t.Helper()
	reg := prometheus.NewRegistry()
	opts := Options{
		Config:     configWithDir(t),
		Blobs:      fixtures.blobs,
		Registerer: reg,
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		Version:    "test",
	}
	if os.Getenv("GYRE_TEST_LOG") != "" {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if configure != nil {
		configure(&opts)
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(context.Background()) })
	return testServer{Server: s, reg: reg}
}

func (s testServer) setRoute(t testing.TB, r *inferencev1.Route) {
	t.Helper()
	if _, err := s.SetRoute(context.Background(), r, false); err != nil {
		t.Fatal(err)
	}
}

// counter reads a counter (or the sum of a counter vector's series that
// match labels).
func (s testServer) counter(t testing.TB, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := s.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				if want, ok := labels[lp.GetName()]; ok && want != lp.GetValue() {
					continue metrics
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

// startNATS runs a JetStream server in the test process with the GYRE stream.
func startNATS(t testing.TB) (*natsserver.Server, jetstream.JetStream) {
	t.Helper()
	opts := natstest.DefaultTestOptions
	opts.Port = -1
	opts.JetStream = true
	opts.StoreDir = t.TempDir()
	srv := natstest.RunServer(&opts)
	t.Cleanup(srv.Shutdown)
	nc, err := nats.Connect(srv.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := events.EnsureStream(context.Background(), js); err != nil {
		t.Fatal(err)
	}
	return srv, js
}

// post sends a JSON body and decodes the JSON answer.
func post(t testing.TB, h http.Handler, path, body string, header ...string) (int, http.Header, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return do(t, h, req)
}

func get(t testing.TB, h http.Handler, path string) (int, map[string]any) {
	t.Helper()
	code, _, m := do(t, h, httptest.NewRequest(http.MethodGet, path, nil))
	return code, m
}

func do(t testing.TB, h http.Handler, req *http.Request) (int, http.Header, map[string]any) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var out map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("%s %s: answer %q is not JSON: %v", req.Method, req.URL.Path, rec.Body.String(), err)
	}
	return rec.Code, rec.Header(), out
}

// output finds an output tensor of an infer answer.
func output(t testing.TB, answer map[string]any, name string) map[string]any {
	t.Helper()
	outs, _ := answer["outputs"].([]any)
	for _, o := range outs {
		if m := o.(map[string]any); m["name"] == name {
			return m
		}
	}
	t.Fatalf("no output %q in %v", name, answer)
	return nil
}

func floats(xs any) []float64 {
	var out []float64
	for _, x := range xs.([]any) {
		f, ok := x.(float64)
		if !ok {
			f = math.NaN()
		}
		out = append(out, f)
	}
	return out
}

func strs(xs any) []string {
	var out []string
	for _, x := range xs.([]any) {
		out = append(out, x.(string))
	}
	return out
}

func configWithDir(t testing.TB) config.Inference {
	return config.Inference{LogBuffer: 4096, LogBatch: 64, LogFlushInterval: 20 * time.Millisecond, BundleDir: t.TempDir()}
}

// waitFor polls cond for up to 10 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func counterValue(t testing.TB, c prometheus.Counter) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	families, err := reg.Gather()
	if err != nil || len(families) != 1 {
		t.Fatalf("gather: %v", err)
	}
	return families[0].GetMetric()[0].GetCounter().GetValue()
}

func readDirNames(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names, err
}
