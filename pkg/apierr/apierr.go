// Package apierr is how use cases say what went wrong, and the one place
// those errors become gRPC statuses (and so HTTP codes through the gateway).
package apierr

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5/pgconn"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Error is a failure a caller can act on: its message is safe to show.
type Error struct {
	Code    codes.Code
	Message string
	Fields  []FieldViolation
}

// FieldViolation names the request field at fault.
type FieldViolation struct {
	Field       string
	Description string
}

func (e *Error) Error() string { return e.Message }

func newf(code codes.Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

func NotFound(format string, args ...any) error { return newf(codes.NotFound, format, args...) }
func AlreadyExists(format string, args ...any) error {
	return newf(codes.AlreadyExists, format, args...)
}

// Conflict is a lost optimistic-concurrency race (etag mismatch).
func Conflict(format string, args ...any) error { return newf(codes.Aborted, format, args...) }

func FailedPrecondition(format string, args ...any) error {
	return newf(codes.FailedPrecondition, format, args...)
}

// Invalid reports one or more bad fields.
func Invalid(message string, fields ...FieldViolation) error {
	return &Error{Code: codes.InvalidArgument, Message: message, Fields: fields}
}

// InvalidField reports a single bad field.
func InvalidField(field, format string, args ...any) error {
	d := fmt.Sprintf(format, args...)
	return Invalid(field+": "+d, FieldViolation{Field: field, Description: d})
}

// Status converts any error into a gRPC status. Unknown errors become Internal
// with a generic message (the cause is logged, never sent: it may hold data).
func Status(ctx context.Context, log *slog.Logger, err error) *status.Status {
	if err == nil {
		return nil
	}
	if s, ok := status.FromError(err); ok {
		return s
	}
	var ae *Error
	if errors.As(err, &ae) {
		st := status.New(ae.Code, ae.Message)
		if len(ae.Fields) == 0 {
			return st
		}
		br := &errdetails.BadRequest{}
		for _, f := range ae.Fields {
			br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{Field: f.Field, Description: f.Description})
		}
		if withDetails, derr := st.WithDetails(br); derr == nil {
			return withDetails
		}
		return st
	}
	switch {
	case errors.Is(err, context.Canceled):
		return status.New(codes.Canceled, "request cancelled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.New(codes.DeadlineExceeded, "deadline exceeded")
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "23505":
			return status.New(codes.AlreadyExists, "already exists")
		case "40001", "40P01":
			return status.New(codes.Aborted, "concurrent update, retry")
		}
	}
	log.ErrorContext(ctx, "internal error", "err", err)
	return status.New(codes.Internal, "internal error")
}

// TooLarge is a request over a configured size limit (HTTP 413 on uploads).
func TooLarge(format string, args ...any) error {
	return newf(codes.ResourceExhausted, format, args...)
}
