package worker

import (
	"context"
	"fmt"
	"sync"
	"time"

	schedulerv1 "github.com/gyreml/gyre/pkg/pb/gyre/scheduler/v1"
)

// logSink batches a job's log lines to the scheduler: every 300 ms, or
// sooner when 500 lines are waiting.
type logSink struct {
	w          *Worker
	job, lease string
	mu         sync.Mutex
	lines      []*schedulerv1.LogLine
	kick       chan struct{}
	done       chan struct{}
	closeOnce  sync.Once
}

func newLogSink(w *Worker, job, lease string) *logSink {
	s := &logSink{w: w, job: job, lease: lease, kick: make(chan struct{}, 1), done: make(chan struct{})}
	go s.loop()
	return s
}

func (s *logSink) line(stream, text string) {
	s.mu.Lock()
	s.lines = append(s.lines, &schedulerv1.LogLine{Stream: stream, Text: text})
	full := len(s.lines) >= 500
	s.mu.Unlock()
	if full {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

func (s *logSink) printf(format string, args ...any) { s.line("gyre", fmt.Sprintf(format, args...)) }

func (s *logSink) loop() {
	t := time.NewTicker(300 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			s.flush()
			return
		case <-t.C:
		case <-s.kick:
		}
		s.flush()
	}
}

func (s *logSink) flush() {
	s.mu.Lock()
	lines := s.lines
	s.lines = nil
	s.mu.Unlock()
	if len(lines) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.w.api.AppendLogs(ctx, &schedulerv1.AppendLogsRequest{Job: s.job, LeaseId: s.lease, Lines: lines}); err != nil {
		s.w.log.Warn("could not send log lines", "job", s.job, "lines", len(lines), "err", err)
	}
}

// close flushes what is left; safe to call twice.
func (s *logSink) close() {
	s.closeOnce.Do(func() {
		close(s.done)
		// Wait for the final flush by taking one more turn through flush.
		s.flush()
	})
}
