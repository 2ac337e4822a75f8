package ingestion_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gyreml/gyre/pkg/config"
	"github.com/gyreml/gyre/pkg/gyretest"
)

// csvGenerator produces a CSV of n bytes (rounded up to a whole row) without
// holding it: the upload is streamed from here to the server.
type csvGenerator struct {
	left int64
	row  int
	buf  bytes.Buffer
}

func (g *csvGenerator) Read(p []byte) (int, error) {
	for g.buf.Len() < len(p) && g.left > 0 {
		if g.row == 0 {
			g.buf.WriteString("id,age,income,debt_ratio,segment,region,active,opened,zip3,birth_year,sex,label\n")
		}
		g.row++
		i := g.row
		n, _ := fmt.Fprintf(&g.buf, "%d,%d,%d.%02d,0.%04d,%s,%s,%t,2024-%02d-%02d,%03d,%d,%s,%d\n",
			i, 18+i%70, 20000+i*7%150000, i%100, i*31%10000, []string{"retail", "sme", "corporate"}[i%3],
			[]string{"north", "south", "east", "west"}[i%4], i%3 == 0, 1+i%12, 1+i%28, i%1000, 1940+i%65, []string{"f", "m"}[i%2], i%2)
		g.left -= int64(n)
	}
	if g.buf.Len() == 0 {
		return 0, io.EOF
	}
	return g.buf.Read(p)
}

// peakRSS is the process's peak resident set (VmHWM) in bytes.
func peakRSS(b *testing.B) int64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Skip("no /proc/self/status")
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	b.Skip("no VmHWM")
	return 0
}

// BenchmarkUploadPeakRSS pushes a generated CSV (1 GiB; 64 MiB with -short;
// GYRE_BENCH_UPLOAD_BYTES to choose) through the REST upload into the
// in-process S3, and reports the peak RSS of the whole process (server, S3,
// NATS, client) against its size before the upload, measured in the same run.
func BenchmarkUploadPeakRSS(b *testing.B) {
	size := int64(1 << 30)
	if testing.Short() {
		size = 64 << 20
	}
	if v := os.Getenv("GYRE_BENCH_UPLOAD_BYTES"); v != "" {
		size, _ = strconv.ParseInt(v, 10, 64)
	}
	env := gyretest.StartWith(b, func(c *config.Config) { c.Ingestion.MaxUploadBytes = 4 << 30 })
	for b.Loop() {
		// Reset the peak to the current RSS (Linux clear_refs), so the
		// baseline is the idle process and the peak is this upload's.
		_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
		before := peakRSS(b)
		t0 := time.Now()
		req, _ := http.NewRequest("PUT", env.BaseURL+"/v1/datasets/big/versions:upload", &csvGenerator{left: size})
		req.Header.Set("Content-Type", "text/csv")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), "VERDICT_VALIDATED") {
			b.Fatalf("upload: %d %s", resp.StatusCode, body)
		}
		elapsed := time.Since(t0)
		peak := peakRSS(b)
		b.ReportMetric(float64(size)/(1<<20), "upload-MiB")
		b.ReportMetric(float64(size)/1e6/elapsed.Seconds(), "MB/s")
		b.ReportMetric(float64(before)/(1<<20), "idle-RSS-MiB")
		b.ReportMetric(float64(peak)/(1<<20), "peak-RSS-MiB")
		b.ReportMetric(float64(size)/float64(peak), "upload/peak")
		b.ReportMetric(0, "ns/op")
	}
}
