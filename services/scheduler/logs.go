package scheduler

import (
	"context"
	"encoding/json"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	schedulerv1 "github.com/gyreml/gyre/pkg/pb/gyre/scheduler/v1"
)

// logPoll is how often a follower looks for new lines of a running job.
const logPoll = 200 * time.Millisecond

// GetJobLogs streams a job's log lines in order; with follow it keeps
// streaming until the job ends.
func (s *Service) GetJobLogs(req *schedulerv1.GetJobLogsRequest, stream schedulerv1.SchedulerService_GetJobLogsServer) error {
	ctx := stream.Context()
	if _, err := s.getJob(ctx, req.GetJob()); err != nil {
		return err
	}
	after := req.GetAfterSeq()
	for {
		n, last, err := s.sendLogs(ctx, req.GetJob(), after, stream)
		if err != nil {
			return err
		}
		after = last
		if !req.GetFollow() {
			return nil
		}
		if n == 0 {
			j, err := s.getJob(ctx, req.GetJob())
			if err != nil {
				return err
			}
			if j.GetEndTime() != nil {
				// Lines written just before the end are already in.
				_, _, err := s.sendLogs(ctx, req.GetJob(), after, stream)
				return err
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(logPoll):
			}
		}
	}
}

func (s *Service) sendLogs(ctx context.Context, job string, after int64, stream schedulerv1.SchedulerService_GetJobLogsServer) (int, int64, error) {
	rows, err := s.pool.Query(ctx, `SELECT seq, attempt, stream, text, time FROM job_logs WHERE job = $1 AND seq > $2 ORDER BY seq LIMIT 1000`, job, after)
	if err != nil {
		return 0, after, err
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var l schedulerv1.LogLine
		var t time.Time
		if err := rows.Scan(&l.Seq, &l.Attempt, &l.Stream, &l.Text, &t); err != nil {
			return n, after, err
		}
		l.Time = timestamppb.New(t)
		if err := stream.Send(&l); err != nil {
			return n, after, err
		}
		after = l.Seq
		n++
	}
	return n, after, rows.Err()
}

func (s *Service) ListWorkers(ctx context.Context, _ *schedulerv1.ListWorkersRequest) (*schedulerv1.ListWorkersResponse, error) {
	rows, err := s.pool.Query(ctx, `SELECT w.id::text, w.name, w.cpu, w.memory_mib, w.gpus, w.labels, w.last_seen,
			coalesce((SELECT array_agg(j.id::text) FROM jobs j WHERE j.worker = w.id::text AND j.state = 'running'), '{}')
		FROM workers w WHERE w.last_seen > now() - interval '1 hour' ORDER BY w.name, w.id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	resp := &schedulerv1.ListWorkersResponse{}
	for rows.Next() {
		var w schedulerv1.Worker
		var gpus, labels []byte
		var seen time.Time
		if err := rows.Scan(&w.Id, &w.Name, &w.Cpu, &w.MemoryMib, &gpus, &labels, &seen, &w.RunningJobs); err != nil {
			return nil, err
		}
		var gs []gpu
		if err := json.Unmarshal(gpus, &gs); err != nil {
			return nil, err
		}
		for _, g := range gs {
			w.Gpus = append(w.Gpus, &schedulerv1.GPU{Index: g.Index, Model: g.Model, MemoryMib: g.MemoryMiB})
		}
		if err := json.Unmarshal(labels, &w.Labels); err != nil {
			return nil, err
		}
		w.LastSeen = timestamppb.New(seen)
		resp.Workers = append(resp.Workers, &w)
	}
	return resp, rows.Err()
}
