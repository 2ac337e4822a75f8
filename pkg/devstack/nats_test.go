package devstack

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestNATSJetStreamSurvivesRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()

	n, err := StartNATS(NATSOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	js := connectJetStream(t, n.URL)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"gyre.>"}}); err != nil {
		t.Fatalf("create stream: %v", err)
	}
	if _, err := js.Publish(ctx, "gyre.model.registered", []byte("v1")); err != nil {
		t.Fatalf("publish: %v", err)
	}
	n.Stop()

	n, err = StartNATS(NATSOptions{Dir: dir})
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	defer n.Stop()
	js = connectJetStream(t, n.URL)
	stream, err := js.Stream(ctx, "EVENTS")
	if err != nil {
		t.Fatalf("stream after restart: %v", err)
	}
	msg, err := stream.GetMsg(ctx, 1)
	if err != nil {
		t.Fatalf("get message after restart: %v", err)
	}
	if msg.Subject != "gyre.model.registered" || string(msg.Data) != "v1" {
		t.Fatalf("message after restart = %s %q, want gyre.model.registered \"v1\"", msg.Subject, msg.Data)
	}
}

func TestNATSTakenPortFailsFast(t *testing.T) {
	first, err := StartNATS(NATSOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Stop()

	port := first.Server.Addr().(*net.TCPAddr).Port
	start := time.Now()
	second, err := StartNATS(NATSOptions{Dir: t.TempDir(), Port: port})
	if err == nil {
		second.Stop()
		t.Fatalf("second server started on taken port %d", port)
	}
	if !strings.Contains(err.Error(), strconv.Itoa(port)) {
		t.Errorf("error %q does not name port %d", err, port)
	}
	if waited := time.Since(start); waited >= natsStartTimeout {
		t.Errorf("failing start waited %s, the whole start timeout", waited)
	}
}

func connectJetStream(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}
