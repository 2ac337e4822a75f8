package apierr

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
)

func TestStatusMapsErrorsInOnePlace(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tc := range []struct {
		err  error
		code codes.Code
		msg  string
	}{
		{NotFound("model %q not found", "m"), codes.NotFound, `model "m" not found`},
		{fmt.Errorf("wrapped: %w", AlreadyExists("dup")), codes.AlreadyExists, "dup"},
		{Conflict("stale"), codes.Aborted, "stale"},
		{context.DeadlineExceeded, codes.DeadlineExceeded, "deadline exceeded"},
		{&pgconn.PgError{Code: "23505"}, codes.AlreadyExists, "already exists"},
		// Unknown errors never reach the caller: they may hold user data.
		{errors.New("row 7 has ssn 123-45-6789"), codes.Internal, "internal error"},
	} {
		st := Status(context.Background(), log, tc.err)
		if st.Code() != tc.code || st.Message() != tc.msg {
			t.Errorf("%v -> %s %q, want %s %q", tc.err, st.Code(), st.Message(), tc.code, tc.msg)
		}
	}
}

func TestInvalidCarriesFieldViolations(t *testing.T) {
	st := Status(context.Background(), slog.Default(), InvalidField("spec.dataset", "required"))
	if st.Code() != codes.InvalidArgument {
		t.Fatal(st)
	}
	br, ok := st.Details()[0].(*errdetails.BadRequest)
	if !ok || br.GetFieldViolations()[0].GetField() != "spec.dataset" {
		t.Fatalf("details = %v", st.Details())
	}
}
