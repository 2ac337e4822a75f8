package server

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ErrorBody is the JSON every REST error has, whichever service raised it.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

type ErrorDetail struct {
	Code       string       `json:"code"`
	HTTPStatus int          `json:"httpStatus"`
	Message    string       `json:"message"`
	RequestID  string       `json:"requestId,omitempty"`
	Fields     []FieldError `json:"fields,omitempty"`
}

type FieldError struct {
	Field       string `json:"field"`
	Description string `json:"description"`
}

// WriteError writes a status as Gyre's JSON error body.
func WriteError(w http.ResponseWriter, r *http.Request, st *status.Status) {
	WriteErrorStatus(w, r, st, 0)
}

// WriteErrorStatus is WriteError with an HTTP status chosen by the handler
// (0: the one the gRPC code maps to).
func WriteErrorStatus(w http.ResponseWriter, r *http.Request, st *status.Status, httpStatus int) {
	if httpStatus == 0 {
		httpStatus = runtime.HTTPStatusFromCode(st.Code())
	}
	body := ErrorBody{Error: ErrorDetail{
		Code:       codeName(st.Code()),
		HTTPStatus: httpStatus,
		Message:    st.Message(),
		RequestID:  r.Header.Get("X-Request-Id"),
	}}
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				body.Error.Fields = append(body.Error.Fields, FieldError{Field: v.GetField(), Description: v.GetDescription()})
			}
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(httpStatus)
	_ = json.NewEncoder(w).Encode(body)
}

// codeName is the canonical upper-case name: NOT_FOUND, INVALID_ARGUMENT ...
func codeName(c codes.Code) string { return code.Code(c).String() }

func gatewayError(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	st, ok := status.FromError(err)
	if !ok {
		st = status.New(codes.Unknown, err.Error())
	}
	// Body decoding errors come from the gateway itself, before any handler.
	if st.Code() == codes.InvalidArgument && len(st.Details()) == 0 {
		st = status.New(codes.InvalidArgument, "invalid request: "+st.Message())
	}
	WriteError(w, r, st)
}

func routingError(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
	switch httpStatus {
	case http.StatusNotFound:
		WriteError(w, r, status.New(codes.NotFound, "no route for "+r.Method+" "+r.URL.Path))
	case http.StatusMethodNotAllowed:
		WriteError(w, r, status.New(codes.Unimplemented, "method "+r.Method+" not allowed on "+r.URL.Path))
	default:
		runtime.DefaultRoutingErrorHandler(ctx, mux, m, w, r, httpStatus)
	}
}
