package registry

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gyreml/gyre/pkg/apierr"
	"github.com/gyreml/gyre/pkg/paging"
	eventsv1 "github.com/gyreml/gyre/pkg/pb/gyre/events/v1"
	registryv1 "github.com/gyreml/gyre/pkg/pb/gyre/registry/v1"
)

func (s *Service) CreateModel(ctx context.Context, req *registryv1.CreateModelRequest) (*registryv1.Model, error) {
	err := s.mutate(ctx, func(tx pgx.Tx) (*change, error) {
		created, err := insertModel(ctx, tx, req.GetName(), req.GetDescription(), req.GetTags())
		if err != nil {
			return nil, err
		}
		if !created {
			return nil, apierr.AlreadyExists("model %q already exists", req.GetName())
		}
		return modelCreated(ctx, req.GetName()), nil
	})
	if err != nil {
		return nil, err
	}
	return s.getModel(ctx, s.pool, req.GetName())
}

// insertModel creates the model unless it exists; it reports whether it did.
func insertModel(ctx context.Context, tx pgx.Tx, name, description string, tags map[string]string) (bool, error) {
	if tags == nil {
		tags = map[string]string{}
	}
	tag, err := tx.Exec(ctx, `INSERT INTO models (name, description, tags) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING`,
		name, description, jsonb(tags))
	if err != nil {
		return false, err
	}
	return tag.RowsAffected() == 1, nil
}

func modelCreated(ctx context.Context, name string) *change {
	return &change{
		action: "CreateModel", resource: "models/" + name,
		details: map[string]any{"model": name},
		events:  []event{{"gyre.model.created", &eventsv1.ModelCreated{Model: name, Actor: actor(ctx)}}},
	}
}

func (s *Service) GetModel(ctx context.Context, req *registryv1.GetModelRequest) (*registryv1.Model, error) {
	return s.getModel(ctx, s.pool, req.GetModel())
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

const modelColumns = `m.name, m.description, m.tags, m.latest_version, m.create_time, m.update_time, m.revision,
	coalesce((SELECT jsonb_object_agg(a.alias, a.version) FROM aliases a WHERE a.model = m.name), '{}')`

func scanModel(row pgx.Row) (*registryv1.Model, error) {
	var (
		m                    registryv1.Model
		tags, aliases        []byte
		createTime, updateTm time.Time
		revision             int64
	)
	if err := row.Scan(&m.Name, &m.Description, &tags, &m.LatestVersion, &createTime, &updateTm, &revision, &aliases); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(tags, &m.Tags); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(aliases, &m.Aliases); err != nil {
		return nil, err
	}
	m.CreateTime, m.UpdateTime, m.Etag = timestamppb.New(createTime), timestamppb.New(updateTm), etag(revision)
	return &m, nil
}

func (s *Service) getModel(ctx context.Context, q querier, name string) (*registryv1.Model, error) {
	m, err := scanModel(q.QueryRow(ctx, `SELECT `+modelColumns+` FROM models m WHERE m.name = $1`, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, apierr.NotFound("model %q not found", name)
	}
	return m, err
}

func (s *Service) ListModels(ctx context.Context, req *registryv1.ListModelsRequest) (*registryv1.ListModelsResponse, error) {
	after, err := paging.Key(req.GetPageToken())
	if err != nil {
		return nil, err
	}
	limit := paging.Size(req.GetPageSize())
	rows, err := s.pool.Query(ctx, `SELECT `+modelColumns+` FROM models m
		WHERE m.name > $1 AND starts_with(m.name, $2) ORDER BY m.name LIMIT $3`, after, req.GetNamePrefix(), limit+1)
	if err != nil {
		return nil, err
	}
	models, err := collect(rows, scanModel)
	if err != nil {
		return nil, err
	}
	resp := &registryv1.ListModelsResponse{Models: models}
	if len(models) > limit {
		resp.Models = models[:limit]
		resp.NextPageToken = paging.Token(models[limit-1].Name)
	}
	return resp, nil
}

// collect scans every row with scan.
func collect[T any](rows pgx.Rows, scan func(pgx.Row) (T, error)) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
