package scheduler_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/gyreml/gyre/pkg/config"
	schedulerv1 "github.com/gyreml/gyre/pkg/pb/gyre/scheduler/v1"
)

// BenchmarkDispatch measures, with 8 workers long-polling, the latency from
// SubmitJob returning to a worker holding the job (p50, p99), and the claim
// throughput when 200 jobs are already queued. The baseline measured in the
// same run is a GetJob round trip: the cost of any one RPC here.
func BenchmarkDispatch(b *testing.B) {
	t := b
	f := setup(b, "{on: [drift]}", func(c *config.Config) {
		c.Scheduler.LeaseDuration = time.Minute
		c.Scheduler.MaxRunningPerPipeline = 1000
	})
	ctx := context.Background()
	const workers = 8
	for b.Loop() {
		// Latency: submit one job at a time to idle, waiting workers.
		claimed := make(chan time.Time, 1)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for i := range workers {
			id := f.register(t, fmt.Sprintf("lat-%d", i))
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					resp, err := f.workers.PollJob(ctx, &schedulerv1.PollJobRequest{WorkerId: id, Wait: durationpb.New(200 * time.Millisecond)})
					if err != nil || resp.GetJob() == nil {
						continue
					}
					claimed <- time.Now()
					f.workers.CompleteJob(ctx, &schedulerv1.CompleteJobRequest{Job: resp.GetJob().GetId(), LeaseId: resp.GetLeaseId(), Error: "bench"})
				}
			})
		}
		time.Sleep(300 * time.Millisecond)
		var lat, rtt []time.Duration
		for range 100 {
			j, err := f.jobs.SubmitJob(ctx, &schedulerv1.SubmitJobRequest{Pipeline: "churn"})
			if err != nil {
				b.Fatal(err)
			}
			submitted := time.Now()
			lat = append(lat, (<-claimed).Sub(submitted))
			t0 := time.Now()
			if _, err := f.jobs.GetJob(ctx, &schedulerv1.GetJobRequest{Job: j.GetId()}); err != nil {
				b.Fatal(err)
			}
			rtt = append(rtt, time.Since(t0))
			// Let the retry of the failed attempt drain before the next sample.
			<-claimed
		}
		close(stop)
		wg.Wait()

		// Throughput: 200 queued jobs, 8 workers claiming and completing.
		for range 200 {
			if _, err := f.jobs.SubmitJob(ctx, &schedulerv1.SubmitJobRequest{Pipeline: "churn"}); err != nil {
				b.Fatal(err)
			}
		}
		t0 := time.Now()
		var claims sync.WaitGroup
		var mu sync.Mutex
		n := 0
		for i := range workers {
			id := f.register(t, fmt.Sprintf("tp-%d", i))
			claims.Go(func() {
				for {
					resp, err := f.workers.PollJob(ctx, &schedulerv1.PollJobRequest{WorkerId: id, Wait: durationpb.New(300 * time.Millisecond)})
					if err != nil || resp.GetJob() == nil {
						return
					}
					mu.Lock()
					n++
					mu.Unlock()
					f.workers.CompleteJob(ctx, &schedulerv1.CompleteJobRequest{Job: resp.GetJob().GetId(), LeaseId: resp.GetLeaseId(), Error: "bench"})
				}
			})
		}
		claims.Wait()
		elapsed := time.Since(t0) - 300*time.Millisecond // the last empty poll
		slices.Sort(lat)
		slices.Sort(rtt)
		b.ReportMetric(ms(lat[len(lat)/2]), "p50-dispatch-ms")
		b.ReportMetric(ms(lat[len(lat)*99/100]), "p99-dispatch-ms")
		b.ReportMetric(ms(rtt[len(rtt)/2]), "p50-rpc-ms")
		b.ReportMetric(float64(lat[len(lat)/2])/float64(rtt[len(rtt)/2]), "dispatch/rpc")
		b.ReportMetric(float64(n)/elapsed.Seconds(), "claims/s")
		b.ReportMetric(0, "ns/op")
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
