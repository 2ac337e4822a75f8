package devstack

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

const natsStartTimeout = 30 * time.Second

// NATSOptions configures StartNATS.
type NATSOptions struct {
	// Dir is the JetStream store directory; streams and their messages survive a restart on the same Dir.
	Dir string
	// Host is the listen address, 127.0.0.1 when empty.
	Host string
	// Port is the client port; 0 picks a free one.
	Port   int
	Logger *slog.Logger
}

// NATS is a nats-server with JetStream running inside this process.
type NATS struct {
	// URL is the client URL, nats://HOST:PORT.
	URL    string
	Server *server.Server
}

// StartNATS starts an in-process nats-server with JetStream stored on disk under opts.Dir
// and returns once it accepts clients.
func StartNATS(opts NATSOptions) (*NATS, error) {
	if opts.Dir == "" {
		return nil, errors.New("start nats: no store directory")
	}
	host := cmp.Or(opts.Host, "127.0.0.1")
	port := opts.Port
	if port == 0 {
		port = server.RANDOM_PORT
	}
	logger := cmp.Or(opts.Logger, slog.Default())

	srv, err := server.NewServer(&server.Options{
		Host:      host,
		Port:      port,
		JetStream: true,
		StoreDir:  opts.Dir,
		// The embedding process owns signal handling.
		NoSigs: true,
	})
	if err != nil {
		return nil, fmt.Errorf("start nats: %w", err)
	}
	log := &natsLogger{log: logger.With("component", "nats")}
	srv.SetLoggerV2(log, false, false, false)
	srv.Start()

	// nats-server does not stop on a fatal error (a taken port, an unusable store);
	// polling lets such an error end the wait at once.
	deadline := time.Now().Add(natsStartTimeout)
	for !srv.ReadyForConnections(100 * time.Millisecond) {
		if fatal := log.lastFatal(); fatal != "" || time.Now().After(deadline) {
			stopNATS(srv)
			return nil, fmt.Errorf("start nats on %s:%d: %s", host, opts.Port, cmp.Or(fatal, "not ready after "+natsStartTimeout.String()))
		}
	}
	if !srv.JetStreamEnabled() {
		stopNATS(srv)
		return nil, fmt.Errorf("start nats: jetstream in %s: %s", opts.Dir, cmp.Or(log.lastFatal(), "not enabled"))
	}
	return &NATS{URL: srv.ClientURL(), Server: srv}, nil
}

func stopNATS(srv *server.Server) {
	srv.Shutdown()
	srv.WaitForShutdown()
}

// Stop shuts the server down and waits until it has.
func (n *NATS) Stop() {
	stopNATS(n.Server)
}

// natsLogger sends nats-server's log to slog. nats-server's own Fatalf exits the process;
// this one records the message so that StartNATS can return it as an error.
type natsLogger struct {
	log   *slog.Logger
	mu    sync.Mutex
	fatal string
}

func (l *natsLogger) lastFatal() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fatal
}

func (l *natsLogger) Noticef(format string, v ...any) {
	l.log.Debug("nats server notice", "detail", fmt.Sprintf(format, v...))
}

func (l *natsLogger) Warnf(format string, v ...any) {
	l.log.Warn("nats server warning", "detail", fmt.Sprintf(format, v...))
}

func (l *natsLogger) Errorf(format string, v ...any) {
	l.log.Error("nats server error", "detail", fmt.Sprintf(format, v...))
}

func (l *natsLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.mu.Lock()
	l.fatal = msg
	l.mu.Unlock()
	l.log.Error("nats server fatal error", "detail", msg)
}

func (l *natsLogger) Debugf(format string, v ...any) {}

func (l *natsLogger) Tracef(format string, v ...any) {}
