// Package ingestion is the ingestion service: data comes in as CSV, JSON Lines
// or Parquet, is validated (schema, quality rules, privacy, k-anonymity),
// profiled, and becomes an immutable, content-addressed dataset version that
// training can trust.
package ingestion

import (
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gyreml/gyre/pkg/blob"
	ingestionv1 "github.com/gyreml/gyre/pkg/pb/gyre/ingestion/v1"
	registryv1 "github.com/gyreml/gyre/pkg/pb/gyre/registry/v1"
)

// Schema is the ingestion service's Postgres schema (migrations/ingestion).
const Schema = "ingestion"

const source = "gyre/ingestion"

// Config bounds and keys the service.
type Config struct {
	// MaxUploadBytes refuses bigger uploads (as received, before gunzip).
	MaxUploadBytes int64
	// PseudonymizationKey keys the HMAC of pseudonymised values; keep it
	// stable so the same value pseudonymises alike across versions.
	PseudonymizationKey []byte
	// SpoolDir holds uploads while they are checked (default: the OS temp dir).
	SpoolDir string
}

// Service implements ingestionv1.IngestionServiceServer and the raw upload
// handler.
type Service struct {
	ingestionv1.UnimplementedIngestionServiceServer
	pool     *pgxpool.Pool
	blobs    *blob.Store
	registry registryv1.RegistryServiceClient
	cfg      Config
	log      *slog.Logger
}

func New(pool *pgxpool.Pool, blobs *blob.Store, registry registryv1.RegistryServiceClient, cfg Config, log *slog.Logger) (*Service, error) {
	if cfg.MaxUploadBytes <= 0 {
		return nil, errors.New("ingestion: MaxUploadBytes must be positive")
	}
	if cfg.SpoolDir == "" {
		cfg.SpoolDir = os.TempDir()
	}
	if err := os.MkdirAll(cfg.SpoolDir, 0o700); err != nil {
		return nil, fmt.Errorf("spool dir: %w", err)
	}
	return &Service{pool: pool, blobs: blobs, registry: registry, cfg: cfg, log: log}, nil
}
