// Package registry is the registry service: models, model versions, aliases
// (staging and production are just aliases) with their history, pipelines,
// the lineage graph and the hash-chained audit log.
package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/proto"

	"github.com/gyreml/gyre/pkg/events"
	registryv1 "github.com/gyreml/gyre/pkg/pb/gyre/registry/v1"
	"github.com/gyreml/gyre/pkg/pg"
	"github.com/gyreml/gyre/pkg/server"
)

// Schema is the registry's Postgres schema; its migrations are migrations/registry.
const Schema = "registry"

// source is the CloudEvents source of the registry's events.
const source = "gyre/registry"

// Service implements registryv1.RegistryServiceServer.
type Service struct {
	registryv1.UnimplementedRegistryServiceServer
	pool *pgxpool.Pool
	log  *slog.Logger
}

// New returns the service over a pool whose search_path is Schema.
func New(pool *pgxpool.Pool, log *slog.Logger) *Service {
	return &Service{pool: pool, log: log}
}

// change is what a mutation records: an audit entry and any events, in the
// same transaction as the state change.
type change struct {
	action   string
	resource string
	details  map[string]any
	events   []event
}

type event struct {
	subject string
	data    proto.Message
}

// mutate runs fn in a transaction and appends its audit record and events
// there too, so state, audit and events commit or vanish together. fn returns
// nil change when it changed nothing (an idempotent repeat).
func (s *Service) mutate(ctx context.Context, fn func(tx pgx.Tx) (*change, error)) error {
	return pg.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		c, err := fn(tx)
		if err != nil || c == nil {
			return err
		}
		ri := server.RequestInfoFrom(ctx)
		if err := appendAudit(ctx, tx, ri, c.action, c.resource, c.details); err != nil {
			return err
		}
		for _, e := range c.events {
			if _, err := events.Enqueue(ctx, tx, source, e.subject, e.data); err != nil {
				return fmt.Errorf("enqueue %s: %w", e.subject, err)
			}
		}
		return nil
	})
}

func actor(ctx context.Context) string {
	if a := server.RequestInfoFrom(ctx).Actor; a != "" {
		return a
	}
	return "system"
}

func etag(revision int64) string { return strconv.FormatInt(revision, 10) }

func jsonb(v any) []byte {
	if v == nil {
		return []byte("{}")
	}
	b, err := json.Marshal(v)
	if err != nil {
		return []byte("{}")
	}
	return b
}
