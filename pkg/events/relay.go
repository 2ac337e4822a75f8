package events

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/gyreml/gyre/pkg/pg"
)

const (
	defaultBatchSize    = 100
	defaultPollInterval = 10 * time.Second
	maxRetryDelay       = 30 * time.Second
)

// Relay publishes the outbox of its pool's schema to JetStream.
type Relay struct {
	// Pool's search_path is the service's schema (pg.Connect).
	Pool   *pgxpool.Pool
	JS     jetstream.JetStream
	Logger *slog.Logger
	// BatchSize is how many rows one transaction publishes; default 100.
	BatchSize int
	// PollInterval is the safety poll for a missed notification; default 10s.
	PollInterval time.Duration
	// Retention is how long published outbox rows and handled-event records
	// are kept; default DefaultRetention. Handled records must outlive any
	// redelivery, which the stream's MaxAge bounds.
	Retention time.Duration
}

// DefaultRetention keeps a service's own event history for as long as the
// stream keeps the events.
const DefaultRetention = StreamMaxAge

// pruneEvery is how often the relay prunes the outbox.
const pruneEvery = time.Hour

// Prune deletes published outbox rows and handled-event records older than
// the retention, so the tables stay the size of the retention window.
func (r *Relay) Prune(ctx context.Context) (int64, error) {
	keep := r.Retention
	if keep <= 0 {
		keep = DefaultRetention
	}
	cutoff := time.Now().Add(-keep)
	a, err := r.Pool.Exec(ctx, `DELETE FROM outbox WHERE published_at < $1`, cutoff)
	if err != nil {
		return 0, fmt.Errorf("prune outbox: %w", err)
	}
	b, err := r.Pool.Exec(ctx, `DELETE FROM handled_events WHERE handled_at < $1`, cutoff)
	if err != nil {
		return 0, fmt.Errorf("prune handled events: %w", err)
	}
	return a.RowsAffected() + b.RowsAffected(), nil
}

func (r *Relay) pruneLoop(ctx context.Context) {
	t := time.NewTicker(pruneEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if n, err := r.Prune(ctx); err != nil && ctx.Err() == nil {
			r.logger().Warn("prune failed", "err", err)
		} else if n > 0 {
			r.logger().Info("outbox pruned", "rows", n)
		}
	}
}

// Run publishes pending events, then waits for Enqueue's notification (or the
// safety poll) and publishes again, until ctx is done; it then returns nil.
// Failures (Postgres or NATS unavailable) are logged and retried with backoff.
func (r *Relay) Run(ctx context.Context) error {
	go r.pruneLoop(ctx)
	delay := time.Second
	for {
		start := time.Now()
		err := r.listen(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(start) > maxRetryDelay {
			delay = time.Second
		}
		r.logger().Error("outbox relay failed, retrying", "err", err, "retry_in", delay)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
		delay = min(2*delay, maxRetryDelay)
	}
}

// listen holds a connection that LISTENs on the schema's channel and flushes
// the outbox whenever it wakes; it returns on the first failure.
func (r *Relay) listen(ctx context.Context) error {
	pooled, err := r.Pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire listen connection: %w", err)
	}
	// A connection left listening must not go back to the pool.
	conn := pooled.Hijack()
	defer conn.Close(context.WithoutCancel(ctx))
	var channel string
	if err := conn.QueryRow(ctx, "SELECT $1 || current_schema()", notifyPrefix).Scan(&channel); err != nil {
		return fmt.Errorf("outbox channel: %w", err)
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		return fmt.Errorf("listen %s: %w", channel, err)
	}
	for {
		// Listening starts before the first flush, so no notification is missed.
		if err := r.Flush(ctx); err != nil {
			return err
		}
		wait, cancel := context.WithTimeout(ctx, r.pollInterval())
		_, err := conn.WaitForNotification(wait)
		timedOut := wait.Err() != nil
		cancel()
		if err != nil && !timedOut {
			return fmt.Errorf("wait for outbox notification: %w", err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// Flush publishes every event pending now, in outbox order, and returns
// when all are published (or on the first failure).
func (r *Relay) Flush(ctx context.Context) error {
	for {
		n, err := r.publishBatch(ctx)
		if err != nil {
			return err
		}
		if n < r.batchSize() {
			return nil
		}
	}
}

type outboxRow struct {
	Seq       int64
	ID        string
	Subject   string
	Type      string
	Source    string
	Data      []byte
	Headers   map[string]string
	CreatedAt time.Time
}

// publishBatch publishes up to BatchSize pending rows and marks those that
// JetStream acked. A crash before the mark leaves them pending; publishing
// them again is harmless because JetStream drops a repeated Nats-Msg-Id.
func (r *Relay) publishBatch(ctx context.Context) (int, error) {
	var published int
	var publishErr error
	err := pg.InTx(ctx, r.Pool, func(tx pgx.Tx) error {
		// One relay at a time per schema keeps the stream in outbox order.
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext('gyre.outbox.' || current_schema()))"); err != nil {
			return fmt.Errorf("lock outbox: %w", err)
		}
		rows, _ := tx.Query(ctx, `SELECT seq, id::text, subject, type, source, data, headers, created_at
			FROM outbox WHERE published_at IS NULL ORDER BY seq LIMIT $1`, r.batchSize())
		batch, err := pgx.CollectRows(rows, pgx.RowToStructByPos[outboxRow])
		if err != nil {
			return fmt.Errorf("read outbox: %w", err)
		}
		var done []int64
		for _, row := range batch {
			if publishErr = r.publish(ctx, row); publishErr != nil {
				break
			}
			done = append(done, row.Seq)
		}
		if len(done) == 0 {
			return nil
		}
		if _, err := tx.Exec(ctx, "UPDATE outbox SET published_at = now() WHERE seq = ANY($1)", done); err != nil {
			return fmt.Errorf("mark outbox published: %w", err)
		}
		published = len(done)
		return nil
	})
	if err != nil {
		return 0, err
	}
	return published, publishErr
}

func (r *Relay) publish(ctx context.Context, row outboxRow) error {
	prop := otel.GetTextMapPropagator()
	ctx = prop.Extract(ctx, propagation.MapCarrier(row.Headers))
	ctx, span := otel.Tracer(tracerName).Start(ctx, "publish "+row.Subject,
		trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(spanAttrs(row.Subject, row.ID)...))
	defer span.End()

	msg := NewMsg(row.ID, row.Type, row.Source, row.Subject, row.CreatedAt, row.Data)
	// The consumer's span becomes a child of this one.
	prop.Inject(ctx, headerCarrier(msg.Header))

	ack, err := r.JS.PublishMsg(ctx, msg, jetstream.WithMsgID(row.ID))
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "publish failed")
		return fmt.Errorf("publish event %s on %s: %w", row.ID, row.Subject, err)
	}
	r.logger().Debug("event published", "id", row.ID, "subject", row.Subject, "stream_seq", ack.Sequence, "duplicate", ack.Duplicate)
	return nil
}

func (r *Relay) batchSize() int {
	if r.BatchSize > 0 {
		return r.BatchSize
	}
	return defaultBatchSize
}

func (r *Relay) pollInterval() time.Duration {
	if r.PollInterval > 0 {
		return r.PollInterval
	}
	return defaultPollInterval
}

func (r *Relay) logger() *slog.Logger {
	if r.Logger != nil {
		return r.Logger
	}
	return slog.Default()
}
