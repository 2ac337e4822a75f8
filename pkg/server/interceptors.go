package server

import (
	"context"
	"errors"
	"log/slog"
	"runtime/debug"
	"time"

	"buf.build/go/protovalidate"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/gyreml/gyre/pkg/apierr"
)

const (
	headerRequestID = "x-request-id"
	headerActor     = "x-gyre-actor"
)

type requestInfoKey struct{}

// RequestInfo says who asked and which request it was; the audit log records both.
type RequestInfo struct {
	ID     string
	Actor  string
	Method string
}

// RequestInfoFrom returns the caller of the current RPC (zero outside one).
func RequestInfoFrom(ctx context.Context) RequestInfo {
	ri, _ := ctx.Value(requestInfoKey{}).(RequestInfo)
	return ri
}

// WithRequestInfo is for code that acts outside an RPC (event consumers, tests).
func WithRequestInfo(ctx context.Context, ri RequestInfo) context.Context {
	return context.WithValue(ctx, requestInfoKey{}, ri)
}

func requestInfo(ctx context.Context, method string) RequestInfo {
	ri := RequestInfo{Method: method, Actor: "anonymous"}
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get(headerRequestID); len(v) > 0 && v[0] != "" && len(v[0]) <= 128 {
			ri.ID = v[0]
		}
		if v := md.Get(headerActor); len(v) > 0 && v[0] != "" && len(v[0]) <= 256 {
			ri.Actor = v[0]
		}
	}
	if ri.ID == "" {
		ri.ID = uuid.NewString()
	}
	return ri
}

type rpcMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newRPCMetrics(reg prometheus.Registerer) *rpcMetrics {
	m := &rpcMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gyre_grpc_requests_total", Help: "gRPC requests handled, by method and code.",
		}, []string{"method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "gyre_grpc_request_duration_seconds", Help: "gRPC request latency, by method.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"method"}),
	}
	reg.MustRegister(m.requests, m.duration)
	return m
}

// interceptors holds what every RPC goes through, outermost first: request
// info, logging and metrics, panic recovery, error mapping, validation.
type interceptors struct {
	log       *slog.Logger
	metrics   *rpcMetrics
	validator protovalidate.Validator
}

func (ic *interceptors) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	ri := requestInfo(ctx, info.FullMethod)
	ctx = WithRequestInfo(ctx, ri)
	_ = grpc.SetHeader(ctx, metadata.Pairs(headerRequestID, ri.ID))
	start := time.Now()
	defer func() { ic.observe(ctx, ri, start, err) }()
	defer ic.recoverPanic(ctx, &err)
	if err := ic.validate(req); err != nil {
		return nil, err
	}
	resp, err = handler(ctx, req)
	if err != nil {
		return nil, apierr.Status(ctx, ic.log, err).Err()
	}
	return resp, nil
}

func (ic *interceptors) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	ctx := ss.Context()
	ri := requestInfo(ctx, info.FullMethod)
	ctx = WithRequestInfo(ctx, ri)
	_ = ss.SetHeader(metadata.Pairs(headerRequestID, ri.ID))
	start := time.Now()
	defer func() { ic.observe(ctx, ri, start, err) }()
	defer ic.recoverPanic(ctx, &err)
	err = handler(srv, &validatingStream{ServerStream: ss, ctx: ctx, ic: ic})
	if err != nil {
		return apierr.Status(ctx, ic.log, err).Err()
	}
	return nil
}

func (ic *interceptors) recoverPanic(ctx context.Context, err *error) {
	if r := recover(); r != nil {
		ic.log.ErrorContext(ctx, "panic in handler", "panic", r, "stack", string(debug.Stack()))
		*err = status.Error(codes.Internal, "internal error")
	}
}

func (ic *interceptors) observe(ctx context.Context, ri RequestInfo, start time.Time, err error) {
	code := status.Code(err)
	elapsed := time.Since(start)
	ic.metrics.requests.WithLabelValues(ri.Method, code.String()).Inc()
	ic.metrics.duration.WithLabelValues(ri.Method).Observe(elapsed.Seconds())
	level := slog.LevelInfo
	if code == codes.Internal || code == codes.Unknown || code == codes.DataLoss {
		level = slog.LevelError
	}
	ic.log.Log(ctx, level, "rpc", "method", ri.Method, "code", code.String(), "duration_ms", float64(elapsed.Microseconds())/1000,
		"request_id", ri.ID, "actor", ri.Actor)
}

// validate applies the protovalidate rules declared in the proto files.
func (ic *interceptors) validate(req any) error {
	msg, ok := req.(proto.Message)
	if !ok {
		return nil
	}
	err := ic.validator.Validate(msg)
	if err == nil {
		return nil
	}
	var verr *protovalidate.ValidationError
	if !errors.As(err, &verr) {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	st := status.New(codes.InvalidArgument, verr.Error())
	br := &errdetails.BadRequest{}
	for _, v := range verr.Violations {
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{
			Field:       protovalidate.FieldPathString(v.Proto.GetField()),
			Description: v.Proto.GetMessage(),
		})
	}
	if d, derr := st.WithDetails(br); derr == nil {
		st = d
	}
	return st.Err()
}

type validatingStream struct {
	grpc.ServerStream
	ctx context.Context
	ic  *interceptors
}

func (s *validatingStream) Context() context.Context { return s.ctx }

func (s *validatingStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return s.ic.validate(m)
}

// PropagateRequestInfo is a client interceptor: a call made while serving a
// request carries that request's id and actor, so the callee's logs and audit
// name who really asked.
func PropagateRequestInfo(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if ri := RequestInfoFrom(ctx); ri.ID != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, headerRequestID, ri.ID, headerActor, ri.Actor)
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}
