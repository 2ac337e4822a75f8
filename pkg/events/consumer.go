package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/gyreml/gyre/pkg/pg"
)

const (
	defaultAckWait = 30 * time.Second
	maxNakDelay    = time.Minute
)

// Handler applies an event's effect in tx, the transaction that also records
// the event as handled. An error rolls both back and the event is redelivered.
type Handler func(ctx context.Context, tx pgx.Tx, ev Event) error

// Consumer handles each event on Subjects once, through a durable JetStream
// consumer, recording handled event ids in the pool's schema (handled_events).
type Consumer struct {
	// Pool's search_path is the service's schema (pg.Connect).
	Pool *pgxpool.Pool
	JS   jetstream.JetStream
	// Name is the durable consumer's name, and the key of its handled events.
	Name     string
	Subjects []string
	Handler  Handler
	Logger   *slog.Logger
	// AckWait is how long JetStream waits for an ack before it redelivers,
	// e.g. after a crash between commit and ack; default 30s.
	AckWait time.Duration
}

// Run creates or updates the durable consumer and handles its messages one at
// a time until ctx is done; it then returns nil. It returns an error when the
// consumer cannot be created or its message stream ends (NATS closed).
func (c *Consumer) Run(ctx context.Context) error {
	if c.Name == "" || len(c.Subjects) == 0 || c.Handler == nil {
		return errors.New("events consumer: Name, Subjects and Handler are required")
	}
	ackWait := c.AckWait
	if ackWait <= 0 {
		ackWait = defaultAckWait
	}
	cons, err := c.JS.CreateOrUpdateConsumer(ctx, StreamName, jetstream.ConsumerConfig{
		Durable:        c.Name,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        ackWait,
		FilterSubjects: c.Subjects,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return fmt.Errorf("create consumer %s: %w", c.Name, err)
	}
	iter, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("consume %s: %w", c.Name, err)
	}
	defer iter.Stop()
	for {
		msg, err := iter.Next(jetstream.NextContext(ctx))
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, jetstream.ErrNoHeartbeat) {
			// The iterator re-issues its pull requests and goes on.
			c.logger().Warn("event consumer missed heartbeats", "consumer", c.Name)
			continue
		}
		if err != nil {
			return fmt.Errorf("consume %s: %w", c.Name, err)
		}
		c.handle(ctx, msg)
	}
}

func (c *Consumer) handle(ctx context.Context, msg jetstream.Msg) {
	log := c.logger().With("consumer", c.Name, "subject", msg.Subject())
	ev, err := eventFromMsg(msg)
	if err != nil {
		// Redelivering a message that is not an event cannot help.
		log.Error("malformed event dropped", "err", err)
		if err := msg.Term(); err != nil {
			log.Warn("terminate message failed", "err", err)
		}
		return
	}
	log = log.With("event_id", ev.ID)

	ctx = otel.GetTextMapPropagator().Extract(ctx, headerCarrier(ev.Headers))
	ctx, span := otel.Tracer(tracerName).Start(ctx, "process "+ev.Subject,
		trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(spanAttrs(ev.Subject, ev.ID)...))
	defer span.End()

	duplicate := false
	err = pg.InTx(ctx, c.Pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, "INSERT INTO handled_events (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING", c.Name, ev.ID)
		if err != nil {
			return fmt.Errorf("record handled event: %w", err)
		}
		if tag.RowsAffected() == 0 {
			duplicate = true
			return nil
		}
		return c.Handler(ctx, tx, ev)
	})
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "handle event failed")
		if ctx.Err() != nil {
			// Shutting down: let another replica (or the next start) have it now.
			_ = msg.Nak()
			return
		}
		delay := nakDelay(msg)
		log.Error("event handler failed, will retry", "err", err, "retry_in", delay)
		if err := msg.NakWithDelay(delay); err != nil {
			log.Warn("nak event failed", "err", err)
		}
		return
	}
	if duplicate {
		log.Debug("event already handled")
	}
	// If this ack is lost, the redelivery finds the event in handled_events.
	if err := msg.Ack(); err != nil {
		log.Warn("ack event failed", "err", err)
	}
}

// nakDelay backs off 1s, 2s, 4s ... up to a minute with each redelivery.
func nakDelay(msg jetstream.Msg) time.Duration {
	delivered := uint64(1)
	if md, err := msg.Metadata(); err == nil && md.NumDelivered > 0 {
		delivered = md.NumDelivered
	}
	if delivered > 7 {
		return maxNakDelay
	}
	return min(time.Second<<(delivered-1), maxNakDelay)
}

func (c *Consumer) logger() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.Default()
}
