package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func newTestServer(t *testing.T) *Server {
	t.Helper()
	s, err := New(Options{GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestReadinessNamesTheFailingCheck(t *testing.T) {
	s := newTestServer(t)
	defer s.Stop(context.Background())
	s.SetServing("x")
	s.AddReadiness("postgres", func(context.Context) error { return nil })
	s.AddReadiness("nats", func(context.Context) error { return errors.New("nats CLOSED") })

	resp, err := http.Get("http://" + s.HTTPAddr() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body readiness
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 503 || body.Ready || body.Checks["nats"] != "nats CLOSED" || body.Checks["postgres"] != "ok" {
		t.Fatalf("readyz = %d %+v", resp.StatusCode, body)
	}
}

func TestStopDrainsHealthFirst(t *testing.T) {
	s := newTestServer(t)
	s.SetServing("x")
	conn, err := grpc.NewClient(s.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	health := healthpb.NewHealthClient(conn)
	resp, err := health.Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("before stop: %v %v", resp, err)
	}
	s.Drain()
	resp, err = health.Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("after drain: %v %v", resp, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get("http://" + s.HTTPAddr() + "/livez"); err == nil {
		t.Fatal("still serving HTTP after Stop")
	}
}

func TestUnknownRouteIsAJSONError(t *testing.T) {
	s := newTestServer(t)
	defer s.Stop(context.Background())
	resp, err := http.Get("http://" + s.HTTPAddr() + "/v1/nothing")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body ErrorBody
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 404 || body.Error.Code != "NOT_FOUND" || body.Error.RequestID == "" || resp.Header.Get("X-Request-Id") != body.Error.RequestID {
		t.Fatalf("got %d %+v", resp.StatusCode, body)
	}
}
