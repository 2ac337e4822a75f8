// Package server is what every gyre target serves: gRPC (health, reflection,
// the interceptor chain) and, on the HTTP port, REST through grpc-gateway,
// /livez, /readyz, /metrics and /openapi.json.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/textproto"
	"sort"
	"sync"
	"time"

	"buf.build/go/protovalidate"
	"github.com/google/uuid"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/gyreml/gyre/pkg/pb/openapi"
)

// Options configure a Server.
type Options struct {
	GRPCAddr string
	HTTPAddr string
	Logger   *slog.Logger
	Registry *prometheus.Registry
	// MaxRecvBytes bounds one gRPC message (default 16 MiB).
	MaxRecvBytes int
}

// Server owns the two listeners of a gyre process.
type Server struct {
	GRPC *grpc.Server
	// Gateway is where services register their REST handlers.
	Gateway *runtime.ServeMux
	// Conn is a client of this very server, for the gateway's handlers.
	Conn *grpc.ClientConn

	log      *slog.Logger
	health   *health.Server
	httpMux  *http.ServeMux
	httpSrv  *http.Server
	grpcLis  net.Listener
	httpLis  net.Listener
	mu       sync.Mutex
	checks   map[string]func(context.Context) error
	serveErr chan error
}

// New binds both listeners (so ":0" gets a real port at once) but serves
// nothing until Start: services register in between.
func New(opts Options) (*Server, error) {
	if opts.MaxRecvBytes == 0 {
		opts.MaxRecvBytes = 16 << 20
	}
	validator, err := protovalidate.New()
	if err != nil {
		return nil, fmt.Errorf("protovalidate: %w", err)
	}
	grpcLis, err := net.Listen("tcp", opts.GRPCAddr)
	if err != nil {
		return nil, fmt.Errorf("listen grpc %s: %w", opts.GRPCAddr, err)
	}
	httpLis, err := net.Listen("tcp", opts.HTTPAddr)
	if err != nil {
		grpcLis.Close()
		return nil, fmt.Errorf("listen http %s: %w", opts.HTTPAddr, err)
	}
	ic := &interceptors{log: opts.Logger, metrics: newRPCMetrics(opts.Registry), validator: validator}
	s := &Server{
		GRPC: grpc.NewServer(
			grpc.StatsHandler(otelgrpc.NewServerHandler()),
			grpc.ChainUnaryInterceptor(ic.unary),
			grpc.ChainStreamInterceptor(ic.stream),
			grpc.MaxRecvMsgSize(opts.MaxRecvBytes),
		),
		log:      opts.Logger,
		health:   health.NewServer(),
		httpMux:  http.NewServeMux(),
		grpcLis:  grpcLis,
		httpLis:  httpLis,
		checks:   map[string]func(context.Context) error{},
		serveErr: make(chan error, 2),
	}
	healthpb.RegisterHealthServer(s.GRPC, s.health)
	reflection.Register(s.GRPC)
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)

	s.Conn, err = grpc.NewClient(grpcLis.Addr().String(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStatsHandler(otelgrpc.NewClientHandler()),
		grpc.WithChainUnaryInterceptor(PropagateRequestInfo),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(opts.MaxRecvBytes), grpc.MaxCallSendMsgSize(opts.MaxRecvBytes)))
	if err != nil {
		grpcLis.Close()
		httpLis.Close()
		return nil, fmt.Errorf("gateway client: %w", err)
	}
	s.Gateway = runtime.NewServeMux(
		runtime.WithErrorHandler(gatewayError),
		runtime.WithRoutingErrorHandler(routingError),
		runtime.WithIncomingHeaderMatcher(incomingHeader),
		runtime.WithOutgoingHeaderMatcher(outgoingHeader),
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.HTTPBodyMarshaler{Marshaler: &runtime.JSONPb{
			MarshalOptions:   protojson.MarshalOptions{EmitUnpopulated: false},
			UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
		}}),
	)

	s.httpMux.HandleFunc("GET /livez", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("ok\n"))
	})
	s.httpMux.HandleFunc("GET /readyz", s.readyz)
	s.httpMux.Handle("GET /metrics", promhttp.HandlerFor(opts.Registry, promhttp.HandlerOpts{Registry: opts.Registry}))
	s.httpMux.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(openapi.Document)
	})
	s.httpMux.Handle("/", s.Gateway)
	s.httpSrv = &http.Server{Handler: withRequestID(s.httpMux), ReadHeaderTimeout: 10 * time.Second}
	return s, nil
}

// GRPCAddr and HTTPAddr are the bound addresses.
func (s *Server) GRPCAddr() string { return s.grpcLis.Addr().String() }
func (s *Server) HTTPAddr() string { return s.httpLis.Addr().String() }

// Handle adds a plain HTTP handler beside the gateway (e.g. streaming uploads).
func (s *Server) Handle(pattern string, h http.Handler) { s.httpMux.Handle(pattern, h) }

// AddReadiness adds a check that /readyz runs; all must pass for ready.
func (s *Server) AddReadiness(name string, check func(context.Context) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks[name] = check
}

// SetServing marks a gRPC service (and the server as a whole) serving.
func (s *Server) SetServing(service string) {
	s.health.SetServingStatus(service, healthpb.HealthCheckResponse_SERVING)
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
}

// Start serves both listeners in the background.
func (s *Server) Start(context.Context) error {
	go func() {
		if err := s.GRPC.Serve(s.grpcLis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			s.serveErr <- fmt.Errorf("grpc serve: %w", err)
		}
	}()
	go func() {
		if err := s.httpSrv.Serve(s.httpLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.serveErr <- fmt.Errorf("http serve: %w", err)
		}
	}()
	return nil
}

// Err reports a listener that died.
func (s *Server) Err() <-chan error { return s.serveErr }

// Drain fails health first, so load balancers stop sending new work.
func (s *Server) Drain() {
	s.health.Shutdown()
}

// Stop drains: health NOT_SERVING, HTTP shutdown, graceful gRPC stop, all
// within ctx's deadline, after which in-flight RPCs are cut.
func (s *Server) Stop(ctx context.Context) error {
	s.Drain()
	httpErr := s.httpSrv.Shutdown(ctx)
	done := make(chan struct{})
	go func() {
		s.GRPC.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.GRPC.Stop()
		<-done
	}
	_ = s.Conn.Close()
	if httpErr != nil && !errors.Is(httpErr, context.DeadlineExceeded) {
		return fmt.Errorf("http shutdown: %w", httpErr)
	}
	return nil
}

type readiness struct {
	Ready  bool              `json:"ready"`
	Checks map[string]string `json:"checks"`
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	names := make([]string, 0, len(s.checks))
	for n := range s.checks {
		names = append(names, n)
	}
	checks := s.checks
	s.mu.Unlock()
	sort.Strings(names)

	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	res := readiness{Ready: true, Checks: map[string]string{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, n := range names {
		wg.Go(func() {
			result := "ok"
			if err := checks[n](ctx); err != nil {
				result = err.Error()
			}
			mu.Lock()
			defer mu.Unlock()
			res.Checks[n] = result
			if result != "ok" {
				res.Ready = false
			}
		})
	}
	wg.Wait()
	if resp, err := s.health.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		res.Ready = false
		res.Checks["grpc"] = "not serving"
	}
	w.Header().Set("Content-Type", "application/json")
	if !res.Ready {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(res)
}

// withRequestID gives every HTTP request an id (kept if the client sent one)
// that the gateway forwards to gRPC and the response echoes.
func withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if id == "" || len(id) > 128 {
			id = uuid.NewString()
			r.Header.Set("X-Request-Id", id)
		}
		w.Header().Set("X-Request-Id", id)
		next.ServeHTTP(w, r)
	})
}

func incomingHeader(key string) (string, bool) {
	switch textproto.CanonicalMIMEHeaderKey(key) {
	case "X-Request-Id":
		return headerRequestID, true
	case "X-Gyre-Actor":
		return headerActor, true
	}
	return runtime.DefaultHeaderMatcher(key)
}

func outgoingHeader(key string) (string, bool) {
	// The HTTP middleware already set X-Request-Id; don't send it twice.
	if key == headerRequestID {
		return "", false
	}
	return runtime.MetadataHeaderPrefix + key, true
}
