// Package events carries Gyre's events: CloudEvents over NATS JetStream,
// written through a transactional outbox and read by idempotent consumers.
//
// A service writes its state change and the event in one transaction
// (Enqueue). A Relay publishes outbox rows to the GYRE stream with the row's id
// as Nats-Msg-Id, so a re-publish after a crash is dropped by JetStream's
// duplicate window, and marks them published only after JetStream acked them.
// A Consumer records each handled event id in the same transaction as the
// handler's effect, so a redelivery is skipped. A crash at any point loses no
// event and applies none twice.
//
// Messages use the CloudEvents NATS binding in binary mode: ce-id, ce-type,
// ce-source, ce-specversion, ce-time headers, content-type application/json,
// the payload is protojson, and the W3C trace context travels in lower-case
// traceparent / tracestate headers.
package events

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

const (
	// StreamName is the one stream every Gyre event goes to.
	StreamName = "GYRE"
	// SubjectPrefix starts every event subject: gyre.<entity>.<verb>.
	SubjectPrefix = "gyre."
	// TypePrefix replaces SubjectPrefix in the CloudEvents type.
	TypePrefix = "dev.gyre."
	// DuplicateWindow is how long JetStream remembers a Nats-Msg-Id; a relay
	// re-publishing within it after a crash adds nothing to the stream.
	DuplicateWindow = 10 * time.Minute
)

// CloudEvents NATS binding headers.
const (
	HeaderID          = "ce-id"
	HeaderType        = "ce-type"
	HeaderSource      = "ce-source"
	HeaderSpecVersion = "ce-specversion"
	HeaderTime        = "ce-time"
	HeaderContentType = "content-type"
)

const tracerName = "gyre/events"

// notifyPrefix + the schema is the channel a relay listens on.
const notifyPrefix = "gyre_outbox_"

// EnsureStream creates the GYRE stream or updates it to this configuration.
// StreamMaxAge is how long the stream keeps an event: a consumer down for
// longer misses what is older (the outbox still holds it, for Retention).
const StreamMaxAge = 30 * 24 * time.Hour

func EnsureStream(ctx context.Context, js jetstream.JetStream) error {
	_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        StreamName,
		Description: "Gyre events (CloudEvents, protojson payloads)",
		Subjects:    []string{SubjectPrefix + ">"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Duplicates:  DuplicateWindow,
		MaxAge:      StreamMaxAge,
	})
	if err != nil {
		return fmt.Errorf("ensure stream %s: %w", StreamName, err)
	}
	return nil
}

// Enqueue writes an event into the outbox of tx's schema, so it commits or
// vanishes with the caller's state change, and wakes the schema's relay on
// commit. subject is gyre.<entity>.<verb>, e.g. gyre.model.version.registered.
// The trace context of ctx travels with the event. It returns the event id.
func Enqueue(ctx context.Context, tx pgx.Tx, source, subject string, data proto.Message) (string, error) {
	if !strings.HasPrefix(subject, SubjectPrefix) || len(subject) == len(SubjectPrefix) || strings.ContainsAny(subject, " *>") {
		// The stream would refuse it, and the relay would retry it forever.
		return "", fmt.Errorf("enqueue event: subject %q is not gyre.<entity>.<verb>", subject)
	}
	if source == "" {
		return "", fmt.Errorf("enqueue event %s: empty source", subject)
	}
	payload, err := protojson.Marshal(data)
	if err != nil {
		return "", fmt.Errorf("enqueue event %s: marshal: %w", subject, err)
	}
	carrier := propagation.MapCarrier{}
	otel.GetTextMapPropagator().Inject(ctx, carrier)
	headers, err := json.Marshal(carrier)
	if err != nil {
		return "", fmt.Errorf("enqueue event %s: headers: %w", subject, err)
	}
	id, err := uuid.NewV7()
	if err != nil {
		return "", fmt.Errorf("enqueue event %s: id: %w", subject, err)
	}
	_, err = tx.Exec(ctx, `INSERT INTO outbox (id, subject, type, source, data, headers) VALUES ($1, $2, $3, $4, $5, $6)`,
		id, subject, Type(subject), source, payload, headers)
	if err != nil {
		return "", fmt.Errorf("enqueue event %s: insert outbox: %w", subject, err)
	}
	// Postgres delivers the notification at commit, once per transaction.
	if _, err := tx.Exec(ctx, `SELECT pg_notify($1 || current_schema(), '')`, notifyPrefix); err != nil {
		return "", fmt.Errorf("enqueue event %s: notify relay: %w", subject, err)
	}
	return id.String(), nil
}

// NewMsg is the CloudEvents envelope of one event: every publisher (the
// outbox relay, the inference server's prediction log) builds it here, so
// every consumer reads the same headers.
func NewMsg(id, eventType, source, subject string, created time.Time, data []byte) *nats.Msg {
	msg := nats.NewMsg(subject)
	msg.Data = data
	msg.Header.Set(HeaderID, id)
	msg.Header.Set(HeaderType, eventType)
	msg.Header.Set(HeaderSource, source)
	msg.Header.Set(HeaderSpecVersion, "1.0")
	msg.Header.Set(HeaderTime, created.UTC().Format(time.RFC3339Nano))
	msg.Header.Set(HeaderContentType, "application/json")
	return msg
}

// Type is the CloudEvents type of a subject: gyre.x.y -> dev.gyre.x.y.
func Type(subject string) string {
	return TypePrefix + strings.TrimPrefix(subject, SubjectPrefix)
}

// Event is a received CloudEvent.
type Event struct {
	ID, Type, Source, Subject string
	Time                      time.Time
	// Data is the protojson payload; see Decode.
	Data []byte
	// Headers are the message's NATS headers, ce-* and trace context included.
	Headers nats.Header
}

// Decode unmarshals the payload into a message of proto/gyre/events/v1.
// Unknown fields are ignored, so producers can add fields first.
func (e Event) Decode(into proto.Message) error {
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(e.Data, into); err != nil {
		return fmt.Errorf("decode event %s (%s): %w", e.ID, e.Type, err)
	}
	return nil
}

// eventFromMsg reads the CloudEvents attributes of a JetStream message.
func eventFromMsg(msg jetstream.Msg) (Event, error) {
	h := msg.Headers()
	ev := Event{
		ID:      h.Get(HeaderID),
		Type:    h.Get(HeaderType),
		Source:  h.Get(HeaderSource),
		Subject: msg.Subject(),
		Data:    msg.Data(),
		Headers: h,
	}
	if ev.ID == "" {
		return ev, fmt.Errorf("message on %s has no %s header", msg.Subject(), HeaderID)
	}
	if t := h.Get(HeaderTime); t != "" {
		var err error
		if ev.Time, err = time.Parse(time.RFC3339Nano, t); err != nil {
			return ev, fmt.Errorf("event %s: bad %s %q: %w", ev.ID, HeaderTime, t, err)
		}
	}
	return ev, nil
}

// headerCarrier adapts nats.Header, whose keys are case-sensitive, to the
// propagator, which reads and writes lower-case keys.
type headerCarrier nats.Header

func (c headerCarrier) Get(key string) string { return nats.Header(c).Get(key) }
func (c headerCarrier) Set(key, value string) { nats.Header(c).Set(key, value) }
func (c headerCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

func spanAttrs(subject, id string) []attribute.KeyValue {
	return []attribute.KeyValue{
		attribute.String("messaging.system", "nats"),
		attribute.String("messaging.destination.name", subject),
		attribute.String("messaging.message.id", id),
	}
}
