// Package client is the Go client of Gyre's REST API (grpc-gateway with
// protojson), used by the gyre command's client verbs and by tests.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Client calls one Gyre server over HTTP. It is safe for concurrent use.
type Client struct {
	base  string
	http  *http.Client
	actor string
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient replaces the default HTTP client (60s timeout).
func WithHTTPClient(h *http.Client) Option { return func(c *Client) { c.http = h } }

// WithActor sets the X-Gyre-Actor header, which the server records in the audit log.
func WithActor(actor string) Option { return func(c *Client) { c.actor = actor } }

// New returns a client of the server at baseURL (e.g. http://127.0.0.1:8080).
// The actor defaults to $GYRE_ACTOR, else the OS user name.
func New(baseURL string, opts ...Option) *Client {
	c := &Client{
		base:  strings.TrimRight(baseURL, "/"),
		http:  &http.Client{Timeout: 60 * time.Second},
		actor: DefaultActor(),
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// BaseURL is the server address the client calls.
func (c *Client) BaseURL() string { return c.base }

// DefaultActor is $GYRE_ACTOR, else the OS user name, else "unknown".
func DefaultActor() string {
	if a := os.Getenv("GYRE_ACTOR"); a != "" {
		return a
	}
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "unknown"
}

// APIError is an error the server answered with.
type APIError struct {
	Code       string // canonical gRPC code name: NOT_FOUND, INVALID_ARGUMENT ...
	HTTPStatus int
	Message    string
	Fields     []FieldViolation
	RequestID  string
}

// FieldViolation names a request field at fault (for a pipeline, a spec path).
type FieldViolation struct {
	Field       string `json:"field"`
	Description string `json:"description"`
}

func (e *APIError) Error() string {
	if len(e.Fields) == 0 {
		return e.Message
	}
	problems := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		problems[i] = f.String()
	}
	return e.Summary() + ": " + strings.Join(problems, "; ")
}

// String is "field: description", or the description alone when no field is named.
func (f FieldViolation) String() string {
	if f.Field == "" {
		return f.Description
	}
	return f.Field + ": " + f.Description
}

// Summary is the message without the field problems that servers often
// repeat in it ("invalid pipeline: spec.x: ..." becomes "invalid pipeline").
func (e *APIError) Summary() string {
	if len(e.Fields) == 0 {
		return e.Message
	}
	if i := strings.Index(e.Message, e.Fields[0].String()); i >= 0 {
		if s := strings.Trim(e.Message[:i], " :-\n\t"); s != "" {
			return s
		}
		return "invalid request"
	}
	return e.Message
}

// HasCode reports whether err is an APIError with the given code (e.g. "NOT_FOUND").
func HasCode(err error, code string) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Code == code
}

// do sends one request; in (may be nil) is the JSON body, out receives the answer.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, in, out proto.Message) error {
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var body io.Reader
	if in != nil {
		raw, err := protojson.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("X-Request-Id", uuid.NewString())
	req.Header.Set("X-Gyre-Actor", c.actor)
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, u, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("read %s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return decodeError(resp, raw)
	}
	// Unknown fields come from newer servers: ignore them.
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(raw, out); err != nil {
		return fmt.Errorf("decode %s %s: %w", method, path, err)
	}
	return nil
}

// decodeError reads Gyre's JSON error body, or makes do with the status line
// when something else (a proxy, an older server) answered.
func decodeError(resp *http.Response, raw []byte) error {
	var body struct {
		Error struct {
			Code       string           `json:"code"`
			HTTPStatus int              `json:"httpStatus"`
			Message    string           `json:"message"`
			RequestID  string           `json:"requestId"`
			Fields     []FieldViolation `json:"fields"`
		} `json:"error"`
	}
	if err := json.Unmarshal(raw, &body); err == nil && body.Error.Message != "" {
		e := body.Error
		return &APIError{Code: e.Code, HTTPStatus: resp.StatusCode, Message: e.Message, Fields: e.Fields, RequestID: firstNonEmpty(e.RequestID, resp.Header.Get("X-Request-Id"))}
	}
	msg := strings.TrimSpace(string(raw))
	if len(msg) > 200 {
		msg = msg[:200] + "..."
	}
	if msg == "" {
		msg = resp.Status
	} else {
		msg = resp.Status + ": " + msg
	}
	return &APIError{Code: codeForStatus(resp.StatusCode), HTTPStatus: resp.StatusCode, Message: msg, RequestID: resp.Header.Get("X-Request-Id")}
}

func codeForStatus(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "INVALID_ARGUMENT"
	case http.StatusUnauthorized:
		return "UNAUTHENTICATED"
	case http.StatusForbidden:
		return "PERMISSION_DENIED"
	case http.StatusNotFound:
		return "NOT_FOUND"
	case http.StatusConflict:
		return "ALREADY_EXISTS"
	case http.StatusTooManyRequests:
		return "RESOURCE_EXHAUSTED"
	case http.StatusNotImplemented:
		return "UNIMPLEMENTED"
	case http.StatusServiceUnavailable:
		return "UNAVAILABLE"
	case http.StatusGatewayTimeout:
		return "DEADLINE_EXCEEDED"
	}
	if status >= 500 {
		return "INTERNAL"
	}
	return "UNKNOWN"
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Ready returns nil when the server's /readyz answers 200, else why not.
func (c *Client) Ready(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/readyz", nil)
	if err != nil {
		return fmt.Errorf("readyz: %w", err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("readyz: %w", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("not ready (%s): %s", resp.Status, strings.TrimSpace(string(raw)))
	}
	return nil
}
