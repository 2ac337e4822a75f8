// Package monitor is the monitor service: it watches models in production.
//
// The inference server's prediction log (gyre.inference.logged) is folded,
// in the consumer's transaction, into windows per model version, environment
// and period (the pipeline's monitoring.window). A window holds sketches of
// bounded size: counts, a latency quantile sketch, one sketch per input
// feature and sketches of the predictions. Predictions are kept for the label
// horizon so that feedback (SubmitFeedback) joins them by prediction id.
//
// When a window ends, the closer scores it: every feature's drift from the
// reference profile of the version's training data (every method, stored),
// the drift of the predictions from the version's first full window, and its
// live performance once labels arrive (measured again while they keep
// arriving). Then the pipeline's rules fire and resolve alerts, with
// hysteresis, through the outbox (gyre.monitor.alert.fired / .resolved) and
// to the configured webhooks.
package monitor

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gyreml/gyre/pkg/blob"
	ingestionv1 "github.com/gyreml/gyre/pkg/pb/gyre/ingestion/v1"
	monitorv1 "github.com/gyreml/gyre/pkg/pb/gyre/monitor/v1"
	registryv1 "github.com/gyreml/gyre/pkg/pb/gyre/registry/v1"
)

// Schema is the monitor's Postgres schema (migrations/monitor).
const Schema = "monitor"

const source = "gyre/monitor"

// ConsumedSubjects are the prediction logs of the inference servers.
var ConsumedSubjects = []string{"gyre.inference.logged"}

// Names under which the model's outputs appear in drift series, beside the
// input features.
const (
	PredictionFeature = "_prediction"       // the output value (regression, binary probability)
	LabelFeature      = "_prediction_label" // the predicted class
)

// Sink formats.
const (
	FormatJSON  = "json"
	FormatSlack = "slack"
)

// Sink is one webhook alerts are delivered to.
type Sink struct {
	URL    string
	Format string // FormatJSON or FormatSlack
}

// id names the sink in the deliveries table without its URL, which may
// hold a token.
func (s Sink) id() string {
	sum := sha256.Sum256([]byte(s.Format + " " + s.URL))
	return hex.EncodeToString(sum[:8])
}

// Config is how the monitor runs; see config.Monitor for each knob. Zero
// values take config.Default's (CloseDelay may be zero).
type Config struct {
	TickInterval     time.Duration
	CloseDelay       time.Duration
	LabelHorizon     time.Duration
	Retention        time.Duration
	ResolveAfter     int
	ResolveMargin    float64
	AlertEnvironment string

	Sinks         []Sink
	SigningSecret []byte
	MaxAttempts   int
	RetryBackoff  time.Duration
	MaxBackoff    time.Duration
	Timeout       time.Duration
}

// withDefaults fills the knobs left zero with config.Default's values.
func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.TickInterval, 5*time.Second)
	def(&c.LabelHorizon, 7*24*time.Hour)
	def(&c.Retention, 90*24*time.Hour)
	def(&c.RetryBackoff, 5*time.Second)
	def(&c.MaxBackoff, 10*time.Minute)
	def(&c.Timeout, 10*time.Second)
	if c.ResolveAfter < 1 {
		c.ResolveAfter = 2
	}
	if c.ResolveMargin <= 0 || c.ResolveMargin > 1 {
		c.ResolveMargin = 0.8
	}
	if c.AlertEnvironment == "" {
		c.AlertEnvironment = "production"
	}
	if c.MaxAttempts < 1 {
		c.MaxAttempts = 10
	}
	return c
}

// Service implements MonitorService and runs the window closer and the
// alert deliveries.
type Service struct {
	monitorv1.UnimplementedMonitorServiceServer
	pool      *pgxpool.Pool
	blobs     *blob.Store
	registry  registryv1.RegistryServiceClient
	ingestion ingestionv1.IngestionServiceClient
	cfg       Config
	log       *slog.Logger
	metrics   *metrics
	http      *http.Client

	versions *versionCache
	profiles *profileCache
	// wake tells the delivery loop that new deliveries were committed.
	wake chan struct{}

	pruneMu   sync.Mutex
	lastPrune time.Time
}

// New builds the service; its metrics go to reg.
func New(pool *pgxpool.Pool, blobs *blob.Store, registry registryv1.RegistryServiceClient, ingestion ingestionv1.IngestionServiceClient,
	cfg Config, reg prometheus.Registerer, log *slog.Logger) (*Service, error) {
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("monitor metrics: %w", err)
	}
	for _, sk := range cfg.Sinks {
		if sk.Format != FormatJSON && sk.Format != FormatSlack {
			return nil, fmt.Errorf("monitor sink: unknown format %q", sk.Format)
		}
	}
	cfg = cfg.withDefaults()
	return &Service{
		pool: pool, blobs: blobs, registry: registry, ingestion: ingestion, cfg: cfg, log: log, metrics: m,
		http:     &http.Client{Timeout: cfg.Timeout},
		versions: newVersionCache(), profiles: newProfileCache(),
		wake: make(chan struct{}, 1),
	}, nil
}

// Run closes and scores windows as they end, measures again the windows
// that received feedback, and prunes what is past its horizon, every
// TickInterval until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	if err := s.refreshFiring(ctx); err != nil && ctx.Err() == nil {
		s.log.Warn("count firing alerts", "err", err)
	}
	t := time.NewTicker(s.cfg.TickInterval)
	defer t.Stop()
	for {
		if err := s.Tick(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("monitor tick", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Tick does one round of the closer's work: every window that ended is
// closed and scored, every relabelled window measured again. A window that
// fails (the registry unreachable, a sketch that does not decode) is logged
// and left for the next round, which goes on with the others; the error
// returned is one that stopped the round.
func (s *Service) Tick(ctx context.Context) error {
	for _, step := range []struct {
		what string
		next func(context.Context, []int64) (int64, error)
	}{{"close window", s.closeNext}, {"measure relabelled window", s.remeasureNext}} {
		failed := []int64{} // not nil: id <> ALL(NULL) holds for no row
		for ctx.Err() == nil {
			id, err := step.next(ctx, failed)
			if err != nil && id == 0 {
				return fmt.Errorf("%s: %w", step.what, err)
			}
			if err != nil {
				s.log.Error("monitor window failed, will retry", "step", step.what, "window", id, "err", err)
				failed = append(failed, id)
				continue
			}
			if id == 0 {
				break
			}
		}
	}
	return s.pruneIfDue(ctx)
}

// notifyDeliveries wakes the delivery loop after a commit that queued some.
func (s *Service) notifyDeliveries() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}
