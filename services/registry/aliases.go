package registry

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gyreml/gyre/pkg/apierr"
	"github.com/gyreml/gyre/pkg/paging"
	eventsv1 "github.com/gyreml/gyre/pkg/pb/gyre/events/v1"
	registryv1 "github.com/gyreml/gyre/pkg/pb/gyre/registry/v1"
)

// SetAlias moves an alias atomically: the alias row, its history entry, the
// audit record and the model.alias.changed event commit together, and moves
// of one alias are serialised so the history is a clean chain.
func (s *Service) SetAlias(ctx context.Context, req *registryv1.SetAliasRequest) (*registryv1.Alias, error) {
	model, alias, to := req.GetModel(), req.GetAlias(), req.GetVersion()
	err := s.mutate(ctx, func(tx pgx.Tx) (*change, error) {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('alias:' || $1 || '/' || $2, 0))`, model, alias); err != nil {
			return nil, err
		}
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM model_versions WHERE model = $1 AND version = $2)`, model, to).Scan(&exists); err != nil {
			return nil, err
		}
		if !exists {
			if _, err := s.getModel(ctx, tx, model); err != nil {
				return nil, err
			}
			return nil, apierr.NotFound("model %q has no version %d", model, to)
		}
		var from, revision int64
		err := tx.QueryRow(ctx, `SELECT version, revision FROM aliases WHERE model = $1 AND alias = $2`, model, alias).Scan(&from, &revision)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return nil, err
		}
		current := ""
		if from != 0 {
			current = etag(revision)
		}
		if req.GetEtag() != "" && req.GetEtag() != current {
			return nil, apierr.Conflict("alias %s/%s changed since etag %s: read it again", model, alias, req.GetEtag())
		}
		if from == to {
			return nil, nil
		}
		who := actor(ctx)
		if _, err := tx.Exec(ctx, `INSERT INTO aliases (model, alias, version, updated_by) VALUES ($1, $2, $3, $4)
			ON CONFLICT (model, alias) DO UPDATE SET version = excluded.version, updated_by = excluded.updated_by,
				update_time = now(), revision = aliases.revision + 1`, model, alias, to, who); err != nil {
			return nil, err
		}
		var changeTime time.Time
		if err := tx.QueryRow(ctx, `INSERT INTO alias_history (model, alias, from_version, to_version, changed_by, reason)
			VALUES ($1, $2, $3, $4, $5, $6) RETURNING change_time`, model, alias, from, to, who, req.GetReason()).Scan(&changeTime); err != nil {
			return nil, err
		}
		if _, err := tx.Exec(ctx, `UPDATE models SET update_time = now(), revision = revision + 1 WHERE name = $1`, model); err != nil {
			return nil, err
		}
		return &change{
			action: "SetAlias", resource: fmt.Sprintf("models/%s/aliases/%s", model, alias),
			details: map[string]any{"from_version": from, "to_version": to, "reason": req.GetReason()},
			events: []event{{"gyre.model.alias.changed", &eventsv1.ModelAliasChanged{
				Model: model, Alias: alias, FromVersion: from, ToVersion: to, Actor: who, Reason: req.GetReason(),
				ChangeTime: timestamppb.New(changeTime),
			}}},
		}, nil
	})
	if err != nil {
		return nil, err
	}
	return s.getAlias(ctx, model, alias)
}

func (s *Service) GetAlias(ctx context.Context, req *registryv1.GetAliasRequest) (*registryv1.Alias, error) {
	return s.getAlias(ctx, req.GetModel(), req.GetAlias())
}

func (s *Service) getAlias(ctx context.Context, model, alias string) (*registryv1.Alias, error) {
	a := &registryv1.Alias{Model: model, Alias: alias}
	var updateTime time.Time
	var revision int64
	err := s.pool.QueryRow(ctx, `SELECT a.version, a.update_time, a.updated_by, a.revision,
			coalesce((SELECT h.from_version FROM alias_history h WHERE h.model = a.model AND h.alias = a.alias ORDER BY h.id DESC LIMIT 1), 0)
		FROM aliases a WHERE a.model = $1 AND a.alias = $2`, model, alias).
		Scan(&a.Version, &updateTime, &a.UpdatedBy, &revision, &a.PreviousVersion)
	if errors.Is(err, pgx.ErrNoRows) {
		if _, merr := s.getModel(ctx, s.pool, model); merr != nil {
			return nil, merr
		}
		return nil, apierr.NotFound("model %q has no alias %q", model, alias)
	}
	if err != nil {
		return nil, err
	}
	a.UpdateTime, a.Etag = timestamppb.New(updateTime), etag(revision)
	return a, nil
}

func (s *Service) ListAliasHistory(ctx context.Context, req *registryv1.ListAliasHistoryRequest) (*registryv1.ListAliasHistoryResponse, error) {
	after, _, err := paging.IntKey(req.GetPageToken())
	if err != nil {
		return nil, err
	}
	if _, err := s.getModel(ctx, s.pool, req.GetModel()); err != nil {
		return nil, err
	}
	limit := paging.Size(req.GetPageSize())
	rows, err := s.pool.Query(ctx, `SELECT id, alias, from_version, to_version, change_time, changed_by, reason FROM alias_history
		WHERE model = $1 AND ($2 = '' OR alias = $2) AND id > $3 ORDER BY id LIMIT $4`, req.GetModel(), req.GetAlias(), after, limit+1)
	if err != nil {
		return nil, err
	}
	var ids []int64
	changes, err := collect(rows, func(row pgx.Row) (*registryv1.AliasChange, error) {
		var c registryv1.AliasChange
		var id int64
		var t time.Time
		if err := row.Scan(&id, &c.Alias, &c.FromVersion, &c.ToVersion, &t, &c.ChangedBy, &c.Reason); err != nil {
			return nil, err
		}
		ids = append(ids, id)
		c.ChangeTime = timestamppb.New(t)
		return &c, nil
	})
	if err != nil {
		return nil, err
	}
	resp := &registryv1.ListAliasHistoryResponse{Changes: changes}
	if len(changes) > limit {
		resp.Changes = changes[:limit]
		resp.NextPageToken = paging.Token(strconv.FormatInt(ids[limit-1], 10))
	}
	return resp, nil
}
