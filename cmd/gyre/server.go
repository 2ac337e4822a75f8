package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/gyreml/gyre/pkg/blob"
	"github.com/gyreml/gyre/pkg/config"
	"github.com/gyreml/gyre/pkg/devstack"
	"github.com/gyreml/gyre/pkg/gyre"
	"github.com/gyreml/gyre/pkg/telemetry"
	"github.com/gyreml/gyre/pkg/worker"
)

func addServerCommands(root *cobra.Command) {
	root.AddCommand(newServerCmd(), newDevCmd(), newWorkerCmd())
}

// serverFlags are the flags that override the config file and environment.
type serverFlags struct {
	configFile string
	targets    string
	grpcAddr   string
	httpAddr   string
	workers    int
}

func (f *serverFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.grpcAddr, "grpc-addr", "", "gRPC listen address (default 127.0.0.1:9090)")
	cmd.Flags().StringVar(&f.httpAddr, "http-addr", "", "HTTP listen address: REST, /readyz, /metrics (default 127.0.0.1:8080)")
}

func (f *serverFlags) apply(c *config.Config) {
	if f.targets != "" {
		c.Targets = strings.Split(f.targets, ",")
	}
	if f.grpcAddr != "" {
		c.GRPCAddr = f.grpcAddr
	}
	if f.httpAddr != "" {
		c.HTTPAddr = f.httpAddr
	}
}

func newServerCmd() *cobra.Command {
	var flags serverFlags
	var printConfig bool
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run Gyre service targets against real Postgres, NATS and S3",
		Long: "Run one or more targets (--target=all, or e.g. --target=registry).\n\n" +
			"Configuration: defaults, then --config FILE (YAML, ${VAR} expanded), then GYRE_* variables\n" +
			"(" + strings.Join(config.EnvNames(), ", ") + "), then flags.",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := config.Default()
			if flags.configFile != "" {
				if err := cfg.LoadFile(flags.configFile); err != nil {
					return err
				}
			}
			if err := cfg.LoadEnv(os.LookupEnv); err != nil {
				return err
			}
			flags.apply(&cfg)
			if printConfig {
				fmt.Fprint(cmd.OutOrStdout(), cfg.Print())
				return nil
			}
			if err := cfg.Validate(); err != nil {
				return fmt.Errorf("invalid configuration:\n%w", err)
			}
			log := telemetry.NewLogger(os.Stderr, cfg.Log.Level, cfg.Log.Format)
			return run(cmd.Context(), cfg, log, func(p *gyre.Process) {
				log.Info("gyre started", "targets", cfg.Targets, "grpc", p.Server.GRPCAddr(), "http", p.Server.HTTPAddr(), "version", version)
			})
		},
	}
	cmd.Flags().StringVar(&flags.configFile, "config", "", "YAML config file")
	cmd.Flags().StringVar(&flags.targets, "target", "", "comma-separated targets: all, registry (default all)")
	cmd.Flags().BoolVar(&printConfig, "print-config", false, "print the effective configuration (secrets masked) and exit")
	flags.register(cmd)
	return cmd
}

// run starts a process, calls started, and drains on the first signal.
func run(ctx context.Context, cfg config.Config, log *slog.Logger, started func(*gyre.Process)) error {
	gyre.BuildVersion = version
	p, err := gyre.New(cfg, log)
	if err != nil {
		return err
	}
	if err := p.Start(ctx); err != nil {
		return err
	}
	started(p)
	select {
	case <-ctx.Done():
		log.Info("shutting down", "deadline", cfg.ShutdownTimeout.String())
	case err := <-p.Server.Err():
		log.Error("server failed", "err", err)
		_ = p.Stop()
		return err
	}
	if err := p.Stop(); err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}

func newDevCmd() *cobra.Command {
	var flags serverFlags
	var stateDir string
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run every Gyre target on embedded defaults (Postgres, NATS JetStream, S3 under --state-dir)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if stateDir == "" {
				stateDir = defaultStateDir()
			}
			abs, err := filepath.Abs(stateDir)
			if err != nil {
				return err
			}
			return runDev(cmd.Context(), cmd.OutOrStdout(), abs, flags)
		},
	}
	cmd.Flags().IntVar(&flags.workers, "workers", 1, "training workers to run in the process (0: none; run `gyre worker` yourself)")
	cmd.Flags().StringVar(&stateDir, "state-dir", "", "where the embedded Postgres, NATS and S3 keep their data (default $XDG_STATE_HOME/gyre or ~/.local/state/gyre; /var/lib/gyre as root)")
	flags.register(cmd)
	return cmd
}

func defaultStateDir() string {
	// As root, the private Postgres runs as an unprivileged user who cannot enter /root.
	if os.Geteuid() == 0 {
		return "/var/lib/gyre"
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "gyre")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state", "gyre")
	}
	return ".gyre"
}

func runDev(ctx context.Context, out io.Writer, stateDir string, flags serverFlags) error {
	t0 := time.Now()
	cfg := config.Default()
	cfg.Log.Format = "text"
	if err := cfg.LoadEnv(os.LookupEnv); err != nil {
		return err
	}
	flags.apply(&cfg)
	cfg.Targets = []string{gyre.All}
	log := telemetry.NewLogger(os.Stderr, cfg.Log.Level, cfg.Log.Format)
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}

	stack, err := startDevStack(ctx, stateDir, &cfg, log)
	if err != nil {
		return err
	}
	defer stack.stop(log)
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	workerCtx, stopWorkers := context.WithCancel(ctx)
	var workers sync.WaitGroup
	defer func() {
		stopWorkers()
		workers.Wait()
	}()
	return run(ctx, cfg, log, func(p *gyre.Process) {
		for i := range flags.workers {
			wcfg := worker.Config{
				Scheduler: p.Server.GRPCAddr(), Name: fmt.Sprintf("dev-worker-%d", i+1), WorkDir: filepath.Join(stateDir, "work"),
				S3:     blob.Config{Endpoint: cfg.S3.Endpoint, AccessKey: cfg.S3.AccessKey, SecretKey: cfg.S3.SecretKey, Bucket: cfg.S3.Bucket, Region: cfg.S3.Region},
				Logger: log.With("worker", i+1), Version: version,
			}
			workers.Go(func() {
				if err := os.MkdirAll(wcfg.WorkDir, 0o755); err != nil {
					log.Error("worker work dir", "err", err)
					return
				}
				w, err := worker.New(workerCtx, wcfg)
				if err == nil {
					err = w.Run(workerCtx)
				}
				if err != nil {
					log.Error("dev worker stopped", "err", err)
				}
			})
		}
		fmt.Fprintf(out, "\nGyre dev is ready in %s (state in %s)\n", time.Since(t0).Round(10*time.Millisecond), stateDir)
		fmt.Fprintf(out, "  REST API    http://%s   (OpenAPI at /openapi.json, /readyz, /metrics)\n", p.Server.HTTPAddr())
		fmt.Fprintf(out, "  gRPC        %s\n", p.Server.GRPCAddr())
		fmt.Fprintf(out, "  Postgres    %s\n", redactURL(cfg.Database.URL))
		fmt.Fprintf(out, "  NATS        %s (JetStream, stream %s)\n", cfg.NATS.URL, "GYRE")
		// Local, throw-away credentials: workers on this machine need them.
		fmt.Fprintf(out, "  S3          http://%s bucket %q (access key %q, secret key %q)\n",
			cfg.S3.Endpoint, cfg.S3.Bucket, cfg.S3.AccessKey, cfg.S3.SecretKey)
		fmt.Fprintf(out, "  Workers     %d in this process (gyre worker --scheduler %s adds more)\n", flags.workers, p.Server.GRPCAddr())
		fmt.Fprintf(out, "Try: gyre demo --server http://%s    Stop: Ctrl-C\n\n", p.Server.HTTPAddr())
	})
}

func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable)"
	}
	return u.Redacted()
}

// devStack is the embedded infrastructure of `gyre dev`.
type devStack struct {
	pg   *devstack.Postgres
	nats *devstack.NATS
	s3   *devstack.S3
}

func startDevStack(ctx context.Context, dir string, cfg *config.Config, log *slog.Logger) (*devStack, error) {
	s := &devStack{}
	var err error
	if url := os.Getenv("GYRE_DATABASE_URL"); url != "" {
		cfg.Database.URL = url
	} else {
		s.pg, err = devstack.StartPostgres(ctx, devstack.PostgresOptions{Dir: filepath.Join(dir, "postgres"), Logger: log})
		if err != nil {
			return nil, err
		}
		cfg.Database.URL = s.pg.URL
	}
	s.nats, err = devstack.StartNATS(devstack.NATSOptions{Dir: filepath.Join(dir, "nats")})
	if err != nil {
		s.stop(log)
		return nil, err
	}
	cfg.NATS.URL = s.nats.URL
	s.s3, err = devstack.StartS3(devstack.S3Options{Dir: filepath.Join(dir, "s3")})
	if err != nil {
		s.stop(log)
		return nil, err
	}
	cfg.S3.Endpoint, cfg.S3.AccessKey, cfg.S3.SecretKey = s.s3.Endpoint, s.s3.AccessKey, s.s3.SecretKey
	// One process logs every prediction itself: monitoring windows need not
	// wait long for late batches from other replicas (unless configured).
	if def := config.Default().Monitor; cfg.Monitor.CloseDelay == def.CloseDelay && cfg.Monitor.TickInterval == def.TickInterval {
		cfg.Monitor.CloseDelay, cfg.Monitor.TickInterval = 2*time.Second, time.Second
	}
	if cfg.Ingestion.PseudonymizationKey == "" {
		if cfg.Ingestion.PseudonymizationKey, err = stateKey(filepath.Join(dir, "pseudonymization.key")); err != nil {
			s.stop(log)
			return nil, err
		}
	}
	return s, nil
}

// stateKey reads a random key kept in the state dir, creating it on first
// use, so pseudonyms stay stable across restarts of `gyre dev`.
func stateKey(path string) (string, error) {
	if b, err := os.ReadFile(path); err == nil {
		return strings.TrimSpace(string(b)), nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return "", err
	}
	key := hex.EncodeToString(buf)
	if err := os.WriteFile(path, []byte(key+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return key, nil
}

func (s *devStack) stop(log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var errs []error
	if s.s3 != nil {
		errs = append(errs, s.s3.Stop(ctx))
	}
	if s.nats != nil {
		s.nats.Stop()
	}
	if s.pg != nil {
		errs = append(errs, s.pg.Stop(ctx))
	}
	if err := errors.Join(errs...); err != nil {
		log.Error("dev stack stop", "err", err)
	}
}
