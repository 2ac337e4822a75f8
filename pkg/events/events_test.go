package events_test

// Integration tests: Postgres (pgtest: GYRE_TEST_DATABASE_URL or a private
// server) and a NATS JetStream server inside the test process.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	natstest "github.com/nats-io/nats-server/v2/test"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	"github.com/gyreml/gyre/migrations"
	"github.com/gyreml/gyre/pkg/events"
	eventsv1 "github.com/gyreml/gyre/pkg/pb/gyre/events/v1"
	"github.com/gyreml/gyre/pkg/pg"
	"github.com/gyreml/gyre/pkg/pgtest"
)

const source = "gyre/test"

func TestMain(m *testing.M) {
	otel.SetTextMapPropagator(propagation.TraceContext{})
	os.Exit(m.Run())
}

type env struct {
	pool    *pgxpool.Pool
	natsURL string
	js      jetstream.JetStream
	log     *slog.Logger
}

func newEnv(t *testing.T) *env {
	t.Helper()
	opts := natstest.DefaultTestOptions
	opts.Port = -1
	opts.JetStream = true
	opts.StoreDir = t.TempDir()
	srv := natstest.RunServer(&opts)
	t.Cleanup(srv.Shutdown)

	e := &env{natsURL: srv.ClientURL(), log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if os.Getenv("GYRE_TEST_LOG") != "" {
		e.log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	e.js = e.jetStream(t)
	if err := events.EnsureStream(t.Context(), e.js); err != nil {
		t.Fatal(err)
	}
	pool, err := pg.Connect(t.Context(), pgtest.DatabaseURL(t), "svc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := pg.Migrate(t.Context(), pool, "svc", migrations.FS, ""); err != nil {
		t.Fatal(err)
	}
	e.pool = pool
	return e
}

// jetStream opens a new client connection, closed when the test ends.
func (e *env) jetStream(t *testing.T) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(e.natsURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func (e *env) relay(js jetstream.JetStream) *events.Relay {
	return &events.Relay{Pool: e.pool, JS: js, Logger: e.log}
}

func (e *env) enqueue(t *testing.T, ctx context.Context, model string) string {
	t.Helper()
	var id string
	err := pg.InTx(ctx, e.pool, func(tx pgx.Tx) error {
		var err error
		id, err = events.Enqueue(ctx, tx, source, "gyre.model.created", &eventsv1.ModelCreated{Model: model, Actor: "alice"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// streamMsgs returns every message in the stream, in stream order.
func (e *env) streamMsgs(t *testing.T) []*jetstream.RawStreamMsg {
	t.Helper()
	stream, err := e.js.Stream(t.Context(), events.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var msgs []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := stream.GetMsg(t.Context(), seq)
		if err != nil {
			t.Fatalf("get stream message %d: %v", seq, err)
		}
		msgs = append(msgs, m)
	}
	return msgs
}

func ids(msgs []*jetstream.RawStreamMsg) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, m.Header.Get(events.HeaderID))
	}
	return out
}

func (e *env) count(t *testing.T, sql string) int {
	t.Helper()
	var n int
	if err := e.pool.QueryRow(t.Context(), sql).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func TestEnqueueRolledBackPublishesNothingCommittedPublishesOnce(t *testing.T) {
	e := newEnv(t)
	tp := sdktrace.NewTracerProvider()
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	ctx, span := tp.Tracer("test").Start(t.Context(), "request")
	defer span.End()

	abort := errors.New("abort")
	err := pg.InTx(ctx, e.pool, func(tx pgx.Tx) error {
		if _, err := events.Enqueue(ctx, tx, source, "gyre.model.created", &eventsv1.ModelCreated{Model: "gone"}); err != nil {
			return err
		}
		return abort
	})
	if !errors.Is(err, abort) {
		t.Fatalf("InTx = %v, want abort", err)
	}
	id := e.enqueue(t, ctx, "churn")
	relay := e.relay(e.js)
	for range 2 {
		if err := relay.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
	}

	msgs := e.streamMsgs(t)
	if len(msgs) != 1 {
		t.Fatalf("stream has %d messages, want 1", len(msgs))
	}
	m := msgs[0]
	want := map[string]string{
		events.HeaderID:          id,
		events.HeaderType:        "dev.gyre.model.created",
		events.HeaderSource:      source,
		events.HeaderSpecVersion: "1.0",
		events.HeaderContentType: "application/json",
		jetstream.MsgIDHeader:    id,
	}
	for k, v := range want {
		if got := m.Header.Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	if m.Subject != "gyre.model.created" {
		t.Errorf("subject %s, want gyre.model.created", m.Subject)
	}
	if ts, err := time.Parse(time.RFC3339Nano, m.Header.Get(events.HeaderTime)); err != nil || time.Since(ts) > time.Minute {
		t.Errorf("ce-time %q (%v), want a recent RFC 3339 time", m.Header.Get(events.HeaderTime), err)
	}
	traceID := span.SpanContext().TraceID().String()
	if tp := m.Header.Get("traceparent"); !strings.Contains(tp, traceID) {
		t.Errorf("traceparent %q, want trace %s", tp, traceID)
	}
	var got eventsv1.ModelCreated
	if err := (events.Event{ID: id, Data: m.Data}).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(&got, &eventsv1.ModelCreated{Model: "churn", Actor: "alice"}) {
		t.Errorf("payload %v, want model churn by alice", &got)
	}
	if n := e.count(t, "SELECT count(*) FROM outbox WHERE published_at IS NULL"); n != 0 {
		t.Errorf("%d outbox rows still unpublished", n)
	}
}

func TestEnqueueRefusesSubjectOutsideStream(t *testing.T) {
	e := newEnv(t)
	for _, subject := range []string{"model.created", "gyre.", "gyre.model.*", "gyre.a b"} {
		err := pg.InTx(t.Context(), e.pool, func(tx pgx.Tx) error {
			_, err := events.Enqueue(t.Context(), tx, source, subject, &eventsv1.ModelCreated{})
			return err
		})
		if err == nil {
			t.Errorf("Enqueue(%q) succeeded, want an error", subject)
		}
	}
}

// crashingJS publishes for real, then "crashes" the relay after n messages:
// its context is cancelled before it can mark them published.
type crashingJS struct {
	jetstream.JetStream
	n         int
	published int
	crash     context.CancelFunc
}

func (c *crashingJS) PublishMsg(ctx context.Context, msg *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	ack, err := c.JetStream.PublishMsg(ctx, msg, opts...)
	if c.published++; c.published == c.n {
		c.crash()
	}
	return ack, err
}

func TestRelayKilledMidBatchLosesNoEventAndPublishesNoneTwice(t *testing.T) {
	e := newEnv(t)
	var want []string
	for i := range 25 {
		want = append(want, e.enqueue(t, t.Context(), fmt.Sprintf("m%d", i)))
	}

	ctx, crash := context.WithCancel(t.Context())
	defer crash()
	dying := e.relay(&crashingJS{JetStream: e.js, n: 15, crash: crash})
	dying.BatchSize = 10
	if err := dying.Flush(ctx); err == nil {
		t.Fatal("the crashing relay's Flush succeeded")
	}
	// The first batch was marked; 5 of the second reached the stream unmarked.
	if got := len(e.streamMsgs(t)); got != 15 {
		t.Fatalf("stream has %d messages after the crash, want 15", got)
	}
	if n := e.count(t, "SELECT count(*) FROM outbox WHERE published_at IS NULL"); n != 15 {
		t.Fatalf("%d rows unpublished after the crash, want 15", n)
	}

	if err := e.relay(e.js).Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := ids(e.streamMsgs(t)); !slices.Equal(got, want) {
		t.Fatalf("stream ids after restart:\n%v\nwant each event once, in order:\n%v", got, want)
	}
	if n := e.count(t, "SELECT count(*) FROM outbox WHERE published_at IS NULL"); n != 0 {
		t.Fatalf("%d rows still unpublished", n)
	}
}

func TestTwoRelaysPublishInOutboxOrder(t *testing.T) {
	e := newEnv(t)
	var want []string
	for i := range 60 {
		want = append(want, e.enqueue(t, t.Context(), fmt.Sprintf("m%d", i)))
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		r := e.relay(e.jetStream(t))
		r.BatchSize = 7
		wg.Go(func() { errs[i] = r.Flush(t.Context()) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if got := ids(e.streamMsgs(t)); !slices.Equal(got, want) {
		t.Fatalf("stream ids:\n%v\nwant outbox order:\n%v", got, want)
	}
}

func TestRelayPublishesOnNotify(t *testing.T) {
	e := newEnv(t)
	cons, err := e.js.OrderedConsumer(t.Context(), events.StreamName, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	relay := e.relay(e.js)
	relay.PollInterval = time.Hour // only a notification can wake it
	ctx, stop := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- relay.Run(ctx) }()

	// The first may be published by Run's initial flush; by the time it
	// arrives the relay is listening, so the second needs the notification.
	for i := range 2 {
		id := e.enqueue(t, t.Context(), fmt.Sprintf("m%d", i))
		msg, err := cons.Next(jetstream.FetchMaxWait(30 * time.Second))
		if err != nil {
			t.Fatalf("event %d not published: %v", i, err)
		}
		if got := msg.Headers().Get(events.HeaderID); got != id {
			t.Fatalf("received %s, want %s", got, id)
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v after its context ended, want nil", err)
	}
}

// awaitAcked waits until the durable consumer has acked every message in the stream.
func awaitAcked(t *testing.T, js jetstream.JetStream, name string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		info, err := consumerInfo(t.Context(), js, name)
		if err == nil && info.NumAckPending == 0 && info.NumPending == 0 && info.Delivered.Stream > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumer %s has not acked every message: %+v (%v)", name, info, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func consumerInfo(ctx context.Context, js jetstream.JetStream, name string) (*jetstream.ConsumerInfo, error) {
	cons, err := js.Consumer(ctx, events.StreamName, name)
	if err != nil {
		return nil, err
	}
	return cons.Info(ctx)
}

func createEffects(t *testing.T, e *env) {
	t.Helper()
	if _, err := e.pool.Exec(t.Context(), "CREATE TABLE effects (event_id text, model text)"); err != nil {
		t.Fatal(err)
	}
}

func applyEffect(ctx context.Context, tx pgx.Tx, ev events.Event) error {
	var m eventsv1.ModelCreated
	if err := ev.Decode(&m); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, "INSERT INTO effects VALUES ($1, $2)", ev.ID, m.Model)
	return err
}

func TestConsumerCrashedBeforeAckAppliesEffectOnce(t *testing.T) {
	e := newEnv(t)
	createEffects(t, e)
	id := e.enqueue(t, t.Context(), "churn")
	if err := e.relay(e.js).Flush(t.Context()); err != nil {
		t.Fatal(err)
	}

	// The first consumer loses its NATS connection after its transaction
	// commits, so it can never ack.
	nc, err := nats.Connect(e.natsURL)
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	first := &events.Consumer{Pool: e.pool, JS: js, Name: "effects", Subjects: []string{"gyre.model.>"}, Logger: e.log, AckWait: time.Second,
		Handler: func(ctx context.Context, tx pgx.Tx, ev events.Event) error {
			defer nc.Close()
			return applyEffect(ctx, tx, ev)
		}}
	if err := first.Run(t.Context()); err == nil {
		t.Fatal("the first consumer's Run returned nil after its connection closed")
	}
	if n := e.count(t, "SELECT count(*) FROM effects"); n != 1 {
		t.Fatalf("%d effects after the first consumer, want 1", n)
	}

	var calls atomic.Int32
	second := &events.Consumer{Pool: e.pool, JS: e.js, Name: "effects", Subjects: []string{"gyre.model.>"}, Logger: e.log, AckWait: time.Second,
		Handler: func(ctx context.Context, tx pgx.Tx, ev events.Event) error {
			calls.Add(1)
			return applyEffect(ctx, tx, ev)
		}}
	ctx, stop := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- second.Run(ctx) }()
	awaitAcked(t, e.js, "effects")
	stop()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v after its context ended, want nil", err)
	}

	if info, err := consumerInfo(t.Context(), e.js, "effects"); err != nil || info.Delivered.Consumer < 2 {
		t.Fatalf("the message was not redelivered (%+v, %v)", info, err)
	}
	if c := calls.Load(); c != 0 {
		t.Fatalf("handler ran %d times for an event already handled", c)
	}
	if n := e.count(t, "SELECT count(*) FROM effects WHERE event_id = '"+id+"'"); n != 1 {
		t.Fatalf("%d effects of event %s, want 1", n, id)
	}
}

func TestConsumerRetriesFailedHandlerAndCarriesTrace(t *testing.T) {
	e := newEnv(t)
	createEffects(t, e)
	tp := sdktrace.NewTracerProvider()
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	ctx, span := tp.Tracer("test").Start(t.Context(), "request")
	id := e.enqueue(t, ctx, "churn")
	span.End()
	// A message that is not an event must not block the ones behind it.
	if _, err := e.js.Publish(t.Context(), "gyre.model.created", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	second := e.enqueue(t, t.Context(), "fraud")
	if err := e.relay(e.js).Flush(t.Context()); err != nil {
		t.Fatal(err)
	}

	var (
		mu       sync.Mutex
		attempts = map[string]int{}
		traceIDs = map[string]trace.TraceID{}
	)
	consumer := &events.Consumer{Pool: e.pool, JS: e.js, Name: "retry", Subjects: []string{"gyre.model.created"}, Logger: e.log,
		Handler: func(ctx context.Context, tx pgx.Tx, ev events.Event) error {
			if err := applyEffect(ctx, tx, ev); err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			attempts[ev.ID]++
			traceIDs[ev.ID] = trace.SpanContextFromContext(ctx).TraceID()
			if ev.ID == id && attempts[ev.ID] == 1 {
				return errors.New("transient failure") // after the effect: it must roll back
			}
			return nil
		}}
	runCtx, stop := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- consumer.Run(runCtx) }()
	awaitAcked(t, e.js, "retry")
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	mu.Lock()
	defer mu.Unlock()
	if attempts[id] != 2 || attempts[second] != 1 {
		t.Fatalf("attempts %v, want 2 for %s (failed once) and 1 for %s", attempts, id, second)
	}
	if n := e.count(t, "SELECT count(*) FROM effects"); n != 2 {
		t.Fatalf("%d effects, want 2 (one per event; the failed attempt rolled back)", n)
	}
	if n := e.count(t, "SELECT count(*) FROM handled_events WHERE consumer = 'retry'"); n != 2 {
		t.Fatalf("%d handled events recorded, want 2", n)
	}
	if got, want := traceIDs[id], span.SpanContext().TraceID(); got != want {
		t.Fatalf("handler trace %s, want the enqueuing request's %s", got, want)
	}
}
