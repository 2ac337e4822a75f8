package inference

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/gyreml/gyre/pkg/apierr"
	"github.com/gyreml/gyre/pkg/blob"
	"github.com/gyreml/gyre/pkg/config"
	"github.com/gyreml/gyre/pkg/model"
	inferencev1 "github.com/gyreml/gyre/pkg/pb/gyre/inference/v1"
)

// Environments a route can serve.
const (
	Production = "production"
	Staging    = "staging"
)

// Roles of a route's versions.
const (
	RoleStable = "stable"
	RoleCanary = "canary"
	RoleShadow = "shadow"
)

// Headers of a REST answer, and the gRPC metadata that picks an environment.
const (
	HeaderModelVersion = "Gyre-Model-Version"
	HeaderPredictionID = "Gyre-Prediction-Id"
	// HeaderRoutingKey, when given, splits traffic by its hash instead of at
	// random: the same key meets the same version while the weight holds.
	HeaderRoutingKey = "X-Request-Id"
	// EnvironmentMetadata picks the environment of a gRPC request
	// (production when absent).
	EnvironmentMetadata = "gyre-environment"
)

// Options configures a Server.
type Options struct {
	// Config is the inference section of Gyre's configuration: log buffer
	// and batching, the bundle directory, each environment's own listener.
	Config config.Inference
	// Blobs is the artifact store bundles are downloaded from.
	Blobs *blob.Store
	// JS receives prediction batches; nil logs nothing.
	JS jetstream.JetStream
	// Registerer receives the metrics; nil keeps them unregistered.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	// Version is the server's version, in server metadata.
	Version string
	// ShadowQueue is how many requests wait for their shadow scoring before
	// new ones are not mirrored (default 1024); ShadowWorkers score them
	// (default GOMAXPROCS).
	ShadowQueue   int
	ShadowWorkers int
	// MaxRequestBytes bounds a REST request body (default 64 MiB).
	MaxRequestBytes int64
	// LogPublishTimeout bounds one publish of a prediction batch (default 5s).
	LogPublishTimeout time.Duration
}

// Server is the data plane: routes, the loaded models, and the REST, gRPC
// and control handlers over them. It is an app.Service: Start runs the
// prediction logger, the shadow workers and each environment's own
// listener (when configured); Drain stops taking requests; Stop finishes
// shadow work and flushes the log.
type Server struct {
	opts    Options
	log     *slog.Logger
	store   *modelStore
	metrics *metrics
	logger  *predictionLogger // nil without JetStream
	version string

	// shadowMu guards sending on shadows against its closing in Stop.
	shadowMu     sync.RWMutex
	shadows      chan shadowJob
	shadowClosed bool

	// mu serialises route changes; requests read table without locks.
	mu    sync.Mutex
	table atomic.Pointer[routeTable]

	ready atomic.Bool
	// started is set by Start; running once its goroutines run.
	started   atomic.Bool
	running   atomic.Bool
	listeners []*http.Server
	addrs     map[string]string
	workers   sync.WaitGroup
	stopOnce  sync.Once
}

// routeTable is every route, immutable once published: a route change
// builds a new table and swaps the pointer.
type routeTable struct {
	// byEnv[environment][model]
	byEnv map[string]map[string]*route
}

// route is what answers one model in one environment.
type route struct {
	env, model             string
	stable, canary, shadow *target
	weight                 int
	spec                   *inferencev1.Route
}

// target is one version in one role of a route.
type target struct {
	role       string
	version    int64
	versionStr string
	// versionHeader is shared, read-only, by every answer's headers.
	versionHeader []string
	m             *loadedModel
	stats         *versionStats
	// okDuration and okRequests are the metrics of a 200 answer.
	okDuration prometheus.Observer
	okRequests prometheus.Counter
}

func (rt *route) targets() []*target {
	ts := make([]*target, 0, 3)
	for _, t := range []*target{rt.stable, rt.canary, rt.shadow} {
		if t != nil {
			ts = append(ts, t)
		}
	}
	return ts
}

// New builds a server with no routes; see SetRoute and SetStaticRoute.
func New(opts Options) (*Server, error) {
	log := cmp.Or(opts.Logger, slog.Default()).With("component", "inference")
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("inference metrics: %w", err)
	}
	if opts.ShadowQueue <= 0 {
		opts.ShadowQueue = 1024
	}
	if opts.ShadowWorkers <= 0 {
		opts.ShadowWorkers = runtime.GOMAXPROCS(0)
	}
	if opts.MaxRequestBytes <= 0 {
		opts.MaxRequestBytes = 64 << 20
	}
	s := &Server{
		opts:    opts,
		log:     log,
		store:   newModelStore(opts.Blobs, opts.Config.BundleDir, log),
		metrics: m,
		shadows: make(chan shadowJob, opts.ShadowQueue),
		version: cmp.Or(opts.Version, "dev"),
	}
	if opts.JS != nil {
		c := opts.Config
		s.logger = newPredictionLogger(opts.JS, cmp.Or(c.LogBuffer, 65536), cmp.Or(c.LogBatch, 512), c.LogFlushInterval,
			opts.LogPublishTimeout, m, log)
	}
	s.table.Store(&routeTable{byEnv: map[string]map[string]*route{}})
	s.ready.Store(true)
	return s, nil
}

// Start runs the prediction logger and the shadow workers, and opens each
// environment's own listener when the configuration names one.
func (s *Server) Start(context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("inference server started twice")
	}
	for _, l := range []struct{ env, addr string }{{Production, s.opts.Config.ProductionAddr}, {Staging, s.opts.Config.StagingAddr}} {
		if l.addr == "" {
			continue
		}
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			for _, srv := range s.listeners {
				_ = srv.Close()
			}
			return fmt.Errorf("listen %s inference %s: %w", l.env, l.addr, err)
		}
		srv := &http.Server{Handler: s.Handler(l.env), ReadHeaderTimeout: 10 * time.Second,
			ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
		s.listeners = append(s.listeners, srv)
		if s.addrs == nil {
			s.addrs = map[string]string{}
		}
		s.addrs[l.env] = ln.Addr().String()
		s.log.Info("inference listening", "environment", l.env, "addr", ln.Addr().String())
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("inference listener stopped", "environment", l.env, "err", err)
			}
		}()
	}
	if s.logger != nil {
		go s.logger.run()
	}
	for range s.opts.ShadowWorkers {
		s.workers.Go(s.shadowWorker)
	}
	s.running.Store(true)
	return nil
}

// Addr is the address of an environment's own listener, once started
// ("" when it has none).
func (s *Server) Addr(env string) string { return s.addrs[env] }

// Drain stops taking requests: readiness turns false and the own
// listeners finish what is in flight.
func (s *Server) Drain(ctx context.Context) error {
	s.ready.Store(false)
	var errs []error
	for _, srv := range s.listeners {
		if err := srv.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Stop finishes queued shadow scoring, publishes the waiting prediction
// records and lets every model go, within ctx.
func (s *Server) Stop(ctx context.Context) error {
	_ = s.Drain(ctx)
	var err error
	s.stopOnce.Do(func() {
		s.shadowMu.Lock()
		s.shadowClosed = true
		close(s.shadows)
		s.shadowMu.Unlock()
		done := make(chan struct{})
		go func() {
			s.workers.Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-ctx.Done():
			err = fmt.Errorf("shadow workers: %w", ctx.Err())
		}
		if s.logger != nil && s.running.Load() {
			if lerr := s.logger.close(ctx); lerr != nil {
				err = errors.Join(err, lerr)
			}
		}
		s.mu.Lock()
		old := s.table.Swap(&routeTable{byEnv: map[string]map[string]*route{}})
		for _, models := range old.byEnv {
			for _, rt := range models {
				s.releaseRoute(rt)
			}
		}
		s.mu.Unlock()
	})
	return err
}

func checkEnvironment(env string) error {
	if env != Production && env != Staging {
		return apierr.InvalidField("environment", "%q is not an environment (production or staging)", env)
	}
	return nil
}

// SetRoute makes env/model answer with the route's versions. Every version
// is downloaded, verified and loaded first; then the route is swapped in
// at once, so requests in flight finish on the old versions and none fails.
// resetStats starts a new stats window; otherwise a version that keeps its
// role keeps its stats.
func (s *Server) SetRoute(ctx context.Context, spec *inferencev1.Route, resetStats bool) (*inferencev1.Route, error) {
	if err := checkEnvironment(spec.GetEnvironment()); err != nil {
		return nil, err
	}
	if spec.GetModel() == "" {
		return nil, apierr.InvalidField("route.model", "required")
	}
	if spec.GetStable() == nil {
		return nil, apierr.InvalidField("route.stable", "required (DeleteRoute stops serving a model)")
	}
	if w := spec.GetCanaryWeight(); w < 0 || w > 100 {
		return nil, apierr.InvalidField("route.canary_weight", "%d is not a percentage (0-100)", w)
	}
	spec = proto.CloneOf(spec)
	rt := &route{env: spec.GetEnvironment(), model: spec.GetModel(), weight: int(spec.GetCanaryWeight()), spec: spec}
	if spec.GetCanary() == nil {
		rt.weight = 0
	}
	roles := []struct {
		role string
		ref  *inferencev1.Target
		into **target
	}{{RoleStable, spec.GetStable(), &rt.stable}, {RoleCanary, spec.GetCanary(), &rt.canary}, {RoleShadow, spec.GetShadow(), &rt.shadow}}
	for _, r := range roles {
		if r.ref == nil {
			continue
		}
		t, err := s.loadTarget(ctx, rt, r.role, r.ref)
		if err != nil {
			s.releaseRoute(rt)
			return nil, err
		}
		*r.into = t
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.table.Load()
	prev := old.byEnv[rt.env][rt.model]
	if prev != nil && !resetStats {
		// A version keeps its stats window in the same role.
		for _, t := range rt.targets() {
			for _, p := range prev.targets() {
				if p.role == t.role && p.version == t.version {
					t.stats = p.stats
				}
			}
		}
	}
	s.table.Store(old.with(rt.env, rt.model, rt))
	if prev != nil {
		s.releaseRoute(prev)
	}
	s.log.Info("route set", "environment", rt.env, "model", rt.model, "stable", spec.GetStable().GetVersion(),
		"canary", spec.GetCanary().GetVersion(), "canary_weight", rt.weight, "shadow", spec.GetShadow().GetVersion(),
		"reset_stats", resetStats)
	return proto.CloneOf(spec), nil
}

func (s *Server) loadTarget(ctx context.Context, rt *route, role string, ref *inferencev1.Target) (*target, error) {
	field := "route." + role
	if ref.GetVersion() <= 0 {
		return nil, apierr.InvalidField(field+".version", "must be positive")
	}
	if len(ref.GetBundleSha256()) != 64 {
		return nil, apierr.InvalidField(field+".bundle_sha256", "want 64 hex digits")
	}
	if ref.GetBundleUri() == "" {
		return nil, apierr.InvalidField(field+".bundle_uri", "required")
	}
	m, err := s.store.acquire(ctx, ref.GetBundleUri(), ref.GetBundleSha256())
	if err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		// The cause (a digest mismatch, a tampered file) is the deployer's
		// to act on; it holds no request data.
		return nil, apierr.FailedPrecondition("%s version %d of model %s: %v", role, ref.GetVersion(), rt.model, err)
	}
	v := strconv.FormatInt(ref.GetVersion(), 10)
	return &target{
		role: role, version: ref.GetVersion(), versionStr: v, versionHeader: []string{v}, m: m,
		stats:      newVersionStats(role, ref.GetVersion()),
		okDuration: s.metrics.duration.WithLabelValues(rt.model, v, rt.env, "200"),
		okRequests: s.metrics.requests.WithLabelValues(rt.model, v, rt.env, "200"),
	}, nil
}

// releaseRoute lets go of a route's models (those no other route holds
// leave memory).
func (s *Server) releaseRoute(rt *route) {
	for _, t := range rt.targets() {
		s.store.release(t.m.digest)
	}
}

// with returns a copy of the table with env/model set to rt (nil deletes).
func (t *routeTable) with(env, name string, rt *route) *routeTable {
	next := &routeTable{byEnv: make(map[string]map[string]*route, len(t.byEnv)+1)}
	for e, models := range t.byEnv {
		next.byEnv[e] = models
	}
	models := make(map[string]*route, len(t.byEnv[env])+1)
	for m, r := range t.byEnv[env] {
		models[m] = r
	}
	if rt == nil {
		delete(models, name)
	} else {
		models[name] = rt
	}
	next.byEnv[env] = models
	return next
}

// DeleteRoute stops serving a model in an environment; deleting a route
// that does not exist is not an error.
func (s *Server) DeleteRoute(_ context.Context, env, name string) error {
	if err := checkEnvironment(env); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.table.Load()
	prev := old.byEnv[env][name]
	if prev == nil {
		return nil
	}
	s.table.Store(old.with(env, name, nil))
	s.releaseRoute(prev)
	s.log.Info("route deleted", "environment", env, "model", name)
	return nil
}

// Routes lists what this process serves.
func (s *Server) Routes() []*inferencev1.Route {
	var out []*inferencev1.Route
	for _, env := range []string{Production, Staging} {
		for _, rt := range s.table.Load().byEnv[env] {
			out = append(out, proto.CloneOf(rt.spec))
		}
	}
	return out
}

// Stats reports each version of a route in the current stats window:
// stable, then canary, then shadow.
func (s *Server) Stats(env, name string) ([]*inferencev1.VersionStats, error) {
	if err := checkEnvironment(env); err != nil {
		return nil, err
	}
	rt := s.table.Load().byEnv[env][name]
	if rt == nil {
		return nil, apierr.NotFound("model %q is not served in %s", name, env)
	}
	var out []*inferencev1.VersionStats
	for _, t := range rt.targets() {
		st, err := t.stats.snapshot()
		if err != nil {
			return nil, fmt.Errorf("stats of %s version %d: %w", name, t.version, err)
		}
		out = append(out, st)
	}
	return out, nil
}

// SetStaticRoute serves one bundle from configuration, for a process that
// runs without a deployer (the Kubernetes target's pods). An empty
// configuration (no model) does nothing.
func (s *Server) SetStaticRoute(ctx context.Context, c config.StaticRoute) error {
	if c.Model == "" {
		return nil
	}
	env := cmp.Or(c.Environment, Production)
	_, err := s.SetRoute(ctx, &inferencev1.Route{Environment: env, Model: c.Model,
		Stable: &inferencev1.Target{Version: c.Version, BundleUri: c.BundleURI, BundleSha256: c.BundleSHA256}}, false)
	if err != nil {
		return fmt.Errorf("static route %s/%s version %d: %w", env, c.Model, c.Version, err)
	}
	return nil
}

// lookup finds the route of env/name.
func (s *Server) lookup(env, name string) (*route, error) {
	rt := s.table.Load().byEnv[env][name]
	if rt == nil {
		return nil, apierr.NotFound("model %q is not served in %s", name, env)
	}
	return rt, nil
}

// choose picks the version that answers: the one asked for (stable,
// canary or shadow of the route), or the canary for canary_weight percent
// of requests (by the routing key's hash when there is one) and the stable
// otherwise.
func (rt *route) choose(version, key string) (*target, error) {
	if version != "" {
		for _, t := range []*target{rt.stable, rt.canary, rt.shadow} {
			if t != nil && t.versionStr == version {
				return t, nil
			}
		}
		return nil, apierr.NotFound("model %q has no version %q in %s", rt.model, version, rt.env)
	}
	if rt.canary != nil && rt.weight > 0 {
		var n uint64
		if key != "" {
			n = fnv1a(key) % 100
		} else {
			n = rand.Uint64N(100)
		}
		if n < uint64(rt.weight) {
			return rt.canary, nil
		}
	}
	return rt.stable, nil
}

// describe is the version metadata and readiness speak of: the one asked
// for, else the stable.
func (rt *route) describe(version string) (*target, error) {
	if version == "" {
		return rt.stable, nil
	}
	return rt.choose(version, "")
}

func fnv1a(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// predictionID is the request's id when it gave one, else a new UUIDv7
// (time-ordered, so stored predictions index well).
func predictionID(given string) string {
	if given != "" {
		return given
	}
	id, err := uuid.NewV7()
	if err != nil {
		return uuid.NewString()
	}
	return id.String()
}

// predict scores rows with a target's model.
func (t *target) predict(rows []model.Row) ([]model.Prediction, error) {
	preds := make([]model.Prediction, len(rows))
	if len(rows) == 0 {
		return preds, nil
	}
	if err := t.m.model.Predict(rows, preds); err != nil {
		if errors.Is(err, model.ErrInput) {
			return nil, apierr.Invalid(err.Error())
		}
		return nil, fmt.Errorf("predict with version %d: %w", t.version, err)
	}
	return preds, nil
}

// answered records a request that reached a version: stats, metrics, the
// prediction log and the shadow copy. code is the HTTP status.
func (s *Server) answered(rt *route, t *target, mirror bool, id string, start time.Time, rows []model.Row, preds []model.Prediction, code int, err error) {
	elapsed := time.Since(start)
	ms := float64(elapsed.Nanoseconds()) / 1e6
	t.stats.observe(ms, preds, err != nil)
	if code == http.StatusOK {
		t.okDuration.Observe(elapsed.Seconds())
		t.okRequests.Inc()
	} else {
		c := strconv.Itoa(code)
		s.metrics.duration.WithLabelValues(rt.model, t.versionStr, rt.env, c).Observe(elapsed.Seconds())
		s.metrics.requests.WithLabelValues(rt.model, t.versionStr, rt.env, c).Inc()
	}
	if s.logger != nil {
		e := &logEntry{id: id, model: rt.model, version: t.version, env: rt.env, role: t.role, time: start, latencyMs: ms,
			inputs: t.m.inputs, rows: rows, preds: preds}
		if err != nil {
			e.rows, e.preds, e.err = nil, nil, publicMessage(err)
		}
		s.logger.enqueue(e)
	}
	if mirror && err == nil && rt.shadow != nil && len(rows) > 0 {
		s.mirror(rt, id, t.m.inputs, rows)
	}
}

// unanswered counts a request no version answered: an unknown model or
// version, or a body that is not a request. The model label is kept only
// for served models, so clients cannot grow the series with made-up names.
func (s *Server) unanswered(env string, rt *route, t *target, start time.Time, code int) {
	name, version := "", ""
	if rt != nil {
		name = rt.model
	}
	if t != nil {
		version = t.versionStr
	}
	c := strconv.Itoa(code)
	s.metrics.duration.WithLabelValues(name, version, env, c).Observe(time.Since(start).Seconds())
	s.metrics.requests.WithLabelValues(name, version, env, c).Inc()
}

// publicMessage is what a caller (and the prediction log) may see of an
// error: the message of an apierr, else a generic one.
func publicMessage(err error) string {
	var ae *apierr.Error
	if errors.As(err, &ae) {
		return ae.Message
	}
	return "internal error"
}

// httpStatus maps an error to the REST answer's status code.
func httpStatus(err error) int {
	var ae *apierr.Error
	if !errors.As(err, &ae) {
		return http.StatusInternalServerError
	}
	switch ae.Code {
	case codes.InvalidArgument, codes.FailedPrecondition, codes.OutOfRange:
		return http.StatusBadRequest
	case codes.NotFound:
		return http.StatusNotFound
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	case codes.ResourceExhausted:
		return http.StatusTooManyRequests
	}
	return http.StatusInternalServerError
}
