package inference

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/gyreml/gyre/pkg/events"
	"github.com/gyreml/gyre/pkg/model"
	eventsv1 "github.com/gyreml/gyre/pkg/pb/gyre/events/v1"
	inferencev1 "github.com/gyreml/gyre/pkg/pb/gyre/inference/v1"
)

// loggedBatches reads every inference.logged message on the stream as the
// monitor would: CloudEvents headers, protojson payload (events.Event).
func loggedBatches(t *testing.T, js jetstream.JetStream, want int) []*eventsv1.InferenceLogged {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, events.StreamName, jetstream.OrderedConsumerConfig{FilterSubjects: []string{LoggedSubject}})
	if err != nil {
		t.Fatal(err)
	}
	var out []*eventsv1.InferenceLogged
	records := 0
	for records < want {
		msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatalf("after %d of %d records: %v", records, want, err)
		}
		h := msg.Headers()
		ev := events.Event{ID: h.Get(events.HeaderID), Type: h.Get(events.HeaderType), Data: msg.Data()}
		var batch eventsv1.InferenceLogged
		if err := ev.Decode(&batch); err != nil {
			t.Fatal(err)
		}
		if ev.ID != batch.GetBatch() || h.Get("Nats-Msg-Id") != batch.GetBatch() || ev.Type != "dev.gyre.inference.logged" ||
			h.Get(events.HeaderSource) != "gyre/inference" || h.Get(events.HeaderSpecVersion) != "1.0" || h.Get(events.HeaderTime) == "" {
			t.Errorf("headers %v for batch %s", h, batch.GetBatch())
		}
		records += len(batch.GetPredictions())
		out = append(out, &batch)
	}
	return out
}

func TestPredictionsAreLoggedInBatches(t *testing.T) {
	_, js := startNATS(t)
	s := newServer(t, func(o *Options) { o.JS = js })
	s.setRoute(t, &inferencev1.Route{Environment: Production, Model: "credit", Stable: fixtures.v1, Shadow: fixtures.v2})
	h := s.Handler(Production)

	var ids []string
	for range 30 {
		code, hdr, answer := post(t, h, "/v2/models/credit/infer", threeRows)
		if code != http.StatusOK {
			t.Fatalf("%d %v", code, answer)
		}
		ids = append(ids, hdr.Get(HeaderPredictionID))
	}
	// A failed request is logged with its error; rows carry missing
	// values as absent.
	post(t, h, "/v2/models/credit/infer", `{"id":"bad","inputs":[{"name":"x0","shape":[1],"datatype":"FP64","data":[1]}]}`)
	post(t, h, "/v2/models/credit/infer", `{"id":"gaps","inputs":[{"name":"x0","shape":[1],"datatype":"FP64","data":[null]},
		{"name":"x1","shape":[1],"datatype":"FP64","data":[2]},{"name":"color","shape":[1],"datatype":"BYTES","data":[null]}]}`)

	// 30 × 3 stable rows, as many shadow rows, the failure, and the gaps
	// row with its shadow copy.
	const want = 30*3*2 + 1 + 2
	batches := loggedBatches(t, js, want)
	if len(batches) < 2 {
		t.Errorf("%d records came in %d message(s); the batch size is 64", want, len(batches))
	}
	byRole := map[string]int{}
	var first, failure, gaps *eventsv1.PredictionRecord
	for _, b := range batches {
		if len(b.GetPredictions()) > 64 {
			t.Errorf("batch of %d records, over LogBatch 64", len(b.GetPredictions()))
		}
		for _, r := range b.GetPredictions() {
			byRole[r.GetRole()]++
			switch {
			case r.GetPredictionId() == ids[0] && r.GetRow() == 0 && r.GetRole() == RoleStable:
				first = r
			case r.GetPredictionId() == "bad":
				failure = r
			case r.GetPredictionId() == "gaps" && r.GetRole() == RoleStable:
				gaps = r
			}
		}
	}
	if byRole[RoleStable] != 30*3+2 || byRole[RoleShadow] != 30*3+1 {
		t.Errorf("records by role %v", byRole)
	}
	if first == nil || failure == nil || gaps == nil {
		t.Fatalf("records missing: first %v, failure %v, gaps %v", first, failure, gaps)
	}
	preds := s.expect(t, Production, "credit", threeModelRows)
	if first.GetModel() != "credit" || first.GetModelVersion() != 1 || first.GetEnvironment() != Production ||
		first.GetNumeric()["x0"] != 0.5 || first.GetNumeric()["x1"] != 1 || first.GetCategorical()["color"] != "red" ||
		first.GetLabel() != preds[0].Label || first.GetValue() != preds[0].Value || !slices.Equal(first.GetProbabilities(), preds[0].Probabilities) ||
		first.GetTime() == nil || first.GetLatencyMs() <= 0 {
		t.Errorf("first record %v", first)
	}
	if failure.GetError() == "" || failure.GetLabel() != "" || len(failure.GetNumeric()) != 0 {
		t.Errorf("failure record %v", failure)
	}
	if _, ok := gaps.GetNumeric()["x0"]; ok || len(gaps.GetCategorical()) != 0 || gaps.GetNumeric()["x1"] != 2 {
		t.Errorf("a row with missing values: %v", gaps)
	}
	// The counter moves once the broker acked, maybe after a consumer saw
	// the message.
	waitFor(t, "logged_total to count every record", func() bool {
		return s.counter(t, "gyre_inference_logged_total", nil) == want
	})
}

// TestBrokerDownDropsRecordsNotRequests stops NATS under a serving server.
func TestBrokerDownDropsRecordsNotRequests(t *testing.T) {
	srv, js := startNATS(t)
	s := newServer(t, func(o *Options) {
		o.JS = js
		o.Config.LogBuffer, o.Config.LogBatch = 300, 30
		o.LogPublishTimeout = 200 * time.Millisecond
	})
	s.setRoute(t, &inferencev1.Route{Environment: Production, Model: "credit", Stable: fixtures.v1})
	h := s.Handler(Production)
	for range 10 {
		post(t, h, "/v2/models/credit/infer", threeRows)
	}
	loggedBatches(t, js, 30)

	srv.Shutdown()
	srv.WaitForShutdown()
	start := time.Now()
	for i := range 2000 {
		if code, _, answer := post(t, h, "/v2/models/credit/infer", threeRows); code != http.StatusOK {
			t.Fatalf("request %d with the broker down: %d %v", i, code, answer)
		}
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("2000 requests took %v with the broker down", d)
	}
	waitFor(t, "drops to be counted", func() bool {
		return s.counter(t, "gyre_inference_log_dropped_total", nil) > 0
	})
	// What waits is bounded by the buffer.
	if p := s.logger.pending.Load(); p > 300 {
		t.Errorf("%d records waiting, over the buffer of 300", p)
	}
	// Every record is either logged, dropped or still waiting.
	waitFor(t, "every record accounted for", func() bool {
		total := s.counter(t, "gyre_inference_logged_total", nil) + s.counter(t, "gyre_inference_log_dropped_total", nil) +
			float64(s.logger.pending.Load())
		return total >= 2010*3-float64(s.logger.batch)
	})
	waitFor(t, "publish failures to be counted", func() bool {
		return s.counter(t, "gyre_inference_log_dropped_total", map[string]string{"reason": dropPublish}) > 0
	})
}

// TestLogBufferFullDrops fills the buffer of a logger that never publishes.
func TestLogBufferFullDrops(t *testing.T) {
	m, _ := newMetrics(nil)
	l := newPredictionLogger(nil, 10, 5, time.Hour, time.Second, m, nil)
	for range 4 {
		l.enqueue(&logEntry{rows: make([]model.Row, 3)})
	}
	if got := counterValue(t, m.logDropped.WithLabelValues(dropBufferFull)); got != 3 {
		t.Errorf("dropped %v records, want 3 (the fourth entry of 3 rows over a buffer of 10)", got)
	}
	if l.pending.Load() != 9 {
		t.Errorf("pending %d, want 9", l.pending.Load())
	}
}

// A categorical value that is not UTF-8 (gRPC BYTES can be anything) must
// not make its batch unencodable.
func TestRecordsOfAnyBytesEncode(t *testing.T) {
	e := &logEntry{id: "id\xff", model: "m", version: 1, env: Production, role: RoleStable, time: time.Now(),
		inputs: testInputs, rows: []model.Row{{{F: 1}, {Null: true}, {S: "r\xffed"}}}, preds: []model.Prediction{{Label: "yes", Value: 0.5}}}
	var batch eventsv1.InferenceLogged
	for r := range e.toRecords {
		batch.Predictions = append(batch.Predictions, r)
	}
	if _, err := protojson.Marshal(&batch); err != nil {
		t.Fatal(err)
	}
	if got := batch.GetPredictions()[0].GetCategorical()["color"]; got != "r\uFFFDed" {
		t.Errorf("categorical %q", got)
	}
}
