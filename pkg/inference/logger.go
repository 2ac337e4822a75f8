package inference

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gyreml/gyre/pkg/events"
	"github.com/gyreml/gyre/pkg/model"
	eventsv1 "github.com/gyreml/gyre/pkg/pb/gyre/events/v1"
)

// LoggedSubject is where prediction batches go.
const LoggedSubject = events.SubjectPrefix + "inference.logged"

// source is the CloudEvents source of the batches.
const source = "gyre/inference"

// defaultPublishTimeout bounds one publish, so a broker that stopped
// answering costs the buffer that long at most before records are dropped.
const defaultPublishTimeout = 5 * time.Second

// logEntry is one request's rows as answered (or its failure). The rows and
// predictions are the request's own, handed over: nobody writes them again.
type logEntry struct {
	id        string
	model     string
	version   int64
	env, role string
	time      time.Time
	latencyMs float64
	inputs    []model.Input
	rows      []model.Row
	preds     []model.Prediction
	err       string
}

// records is how many prediction records the entry becomes.
func (e *logEntry) records() int64 {
	if e.err != "" || len(e.rows) == 0 {
		return 1
	}
	return int64(len(e.rows))
}

// predictionLogger publishes answered rows to JetStream in batches. A
// request only ever hands an entry over without waiting: when capacity
// records are already waiting, the entry is dropped and counted. One
// goroutine turns entries into records and publishes a batch when it holds
// batch records or flush has passed; while it waits on the broker, new
// entries wait in the buffer or are dropped, so memory stays bounded by
// capacity plus one batch.
type predictionLogger struct {
	js       jetstream.JetStream
	capacity int64
	batch    int
	flush    time.Duration
	timeout  time.Duration
	metrics  *metrics
	log      *slog.Logger

	entries chan *logEntry
	pending atomic.Int64 // records in entries
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
}

func newPredictionLogger(js jetstream.JetStream, capacity, batch int, flush, timeout time.Duration, m *metrics, log *slog.Logger) *predictionLogger {
	capacity = max(capacity, 1)
	batch = min(max(batch, 1), capacity)
	if flush <= 0 {
		flush = 200 * time.Millisecond
	}
	if timeout <= 0 {
		timeout = defaultPublishTimeout
	}
	return &predictionLogger{js: js, capacity: int64(capacity), batch: batch, flush: flush, timeout: timeout, metrics: m, log: log,
		// Each entry is at least one record, so the channel never fills
		// before pending reaches capacity.
		entries: make(chan *logEntry, capacity), stop: make(chan struct{}), done: make(chan struct{})}
}

// enqueue hands an entry over, or drops it; it never blocks.
func (l *predictionLogger) enqueue(e *logEntry) {
	n := e.records()
	if l.pending.Add(n) > l.capacity {
		l.pending.Add(-n)
		l.metrics.logDropped.WithLabelValues(dropBufferFull).Add(float64(n))
		return
	}
	select {
	case l.entries <- e:
	default:
		l.pending.Add(-n)
		l.metrics.logDropped.WithLabelValues(dropBufferFull).Add(float64(n))
	}
}

// run batches and publishes until stopped, then publishes what is left
// (within the stop deadline).
func (l *predictionLogger) run() {
	defer close(l.done)
	b := &recordBatch{l: l, records: make([]*eventsv1.PredictionRecord, 0, l.batch)}
	ticker := time.NewTicker(l.flush)
	defer ticker.Stop()
	for {
		select {
		case e := <-l.entries:
			b.add(e)
		case <-ticker.C:
			b.publish()
		case <-l.stop:
			for {
				select {
				case e := <-l.entries:
					b.add(e)
					continue
				default:
				}
				break
			}
			b.publish()
			return
		}
	}
}

// recordBatch is the batch being filled.
type recordBatch struct {
	l       *predictionLogger
	records []*eventsv1.PredictionRecord
}

// add turns an entry into records, publishing each time the batch fills.
func (b *recordBatch) add(e *logEntry) {
	b.l.pending.Add(-e.records())
	for r := range e.toRecords {
		b.records = append(b.records, r)
		if len(b.records) >= b.l.batch {
			b.publish()
		}
	}
}

func (b *recordBatch) publish() {
	if len(b.records) > 0 {
		b.l.publish(b.records)
		clear(b.records)
		b.records = b.records[:0]
	}
}

// close stops run after it published what was waiting, or when ctx ends.
func (l *predictionLogger) close(ctx context.Context) error {
	l.once.Do(func() { close(l.stop) })
	select {
	case <-l.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("prediction logger: %w", ctx.Err())
	}
}

// toRecords yields the entry's prediction records: one per row, or one
// carrying the error.
func (e *logEntry) toRecords(yield func(*eventsv1.PredictionRecord) bool) {
	ts := timestamppb.New(e.time)
	record := func(row int) *eventsv1.PredictionRecord {
		return &eventsv1.PredictionRecord{PredictionId: validUTF8(e.id), Row: int32(row), Model: e.model, ModelVersion: e.version,
			Environment: e.env, Role: e.role, Time: ts, LatencyMs: e.latencyMs}
	}
	if e.err != "" || len(e.rows) == 0 {
		r := record(0)
		r.Error = e.err
		yield(r)
		return
	}
	for i, row := range e.rows {
		r := record(i)
		for j, in := range e.inputs {
			if j >= len(row) || row[j].Null {
				continue
			}
			if in.Kind == model.Categorical {
				if r.Categorical == nil {
					r.Categorical = make(map[string]string, len(e.inputs))
				}
				r.Categorical[in.Name] = validUTF8(row[j].S)
			} else if f := row[j].F; !math.IsNaN(f) && !math.IsInf(f, 0) {
				if r.Numeric == nil {
					r.Numeric = make(map[string]float64, len(e.inputs))
				}
				r.Numeric[in.Name] = f
			}
		}
		if i < len(e.preds) {
			p := e.preds[i]
			r.Label, r.Value, r.Probabilities = validUTF8(p.Label), finite(p.Value), p.Probabilities
		}
		if !yield(r) {
			return
		}
	}
}

// validUTF8 keeps a record encodable: protobuf strings must be UTF-8, and
// a gRPC BYTES value can be anything.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

func finite(f float64) float64 {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0
	}
	return f
}

// publish sends a batch as one message, or as several when it is over the
// server's payload limit; what fails is dropped and counted.
func (l *predictionLogger) publish(batch []*eventsv1.PredictionRecord) {
	nc := l.js.Conn()
	if nc != nil && !nc.IsConnected() {
		// Waiting for a broker that is down would only hold the buffer.
		l.metrics.logDropped.WithLabelValues(dropPublish).Add(float64(len(batch)))
		return
	}
	id, err := uuid.NewV7()
	if err != nil {
		l.metrics.logDropped.WithLabelValues(dropPublish).Add(float64(len(batch)))
		return
	}
	payload, err := protojson.Marshal(&eventsv1.InferenceLogged{Batch: id.String(), Predictions: batch})
	if err != nil {
		l.log.Error("encode prediction batch failed", "err", err)
		l.metrics.logDropped.WithLabelValues(dropPublish).Add(float64(len(batch)))
		return
	}
	if nc != nil && int64(len(payload)) > nc.MaxPayload() && len(batch) > 1 {
		half := len(batch) / 2
		l.publish(batch[:half])
		l.publish(batch[half:])
		return
	}
	msg := events.NewMsg(id.String(), events.Type(LoggedSubject), source, LoggedSubject, time.Now(), payload)
	ctx, cancel := context.WithTimeout(context.Background(), l.timeout)
	defer cancel()
	if _, err := l.js.PublishMsg(ctx, msg, jetstream.WithMsgID(id.String())); err != nil {
		l.log.Warn("prediction batch not logged", "batch", id.String(), "records", len(batch), "err", err)
		l.metrics.logDropped.WithLabelValues(dropPublish).Add(float64(len(batch)))
		return
	}
	l.metrics.logged.Add(float64(len(batch)))
}
