package registry

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gyreml/gyre/pkg/apierr"
	"github.com/gyreml/gyre/pkg/paging"
	eventsv1 "github.com/gyreml/gyre/pkg/pb/gyre/events/v1"
	registryv1 "github.com/gyreml/gyre/pkg/pb/gyre/registry/v1"
	"github.com/gyreml/gyre/pkg/pipeline"
)

// ApplyPipeline validates the whole spec and stores it as a new version,
// unless it is identical to the latest one. The pipeline's model is created
// on first apply.
func (s *Service) ApplyPipeline(ctx context.Context, req *registryv1.ApplyPipelineRequest) (*registryv1.ApplyPipelineResponse, error) {
	p, err := pipeline.Parse([]byte(req.GetManifest()))
	if err != nil {
		return nil, invalidSpec(err)
	}
	canonical, err := p.Canonical()
	if err != nil {
		return nil, err
	}
	digest := p.Digest()
	name, model := p.Metadata.Name, p.ModelName()
	var version int64
	created := false
	err = s.mutate(ctx, func(tx pgx.Tx) (*change, error) {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('pipeline:' || $1, 0))`, name); err != nil {
			return nil, err
		}
		var latestDigest string
		err := tx.QueryRow(ctx, `SELECT version, digest FROM pipelines WHERE name = $1 ORDER BY version DESC LIMIT 1`, name).Scan(&version, &latestDigest)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return nil, err
		}
		if latestDigest == digest {
			return nil, nil
		}
		version++
		created = true
		if _, err := tx.Exec(ctx, `INSERT INTO pipelines (name, version, model, dataset, spec, digest, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			name, version, model, p.Spec.Dataset, canonical, digest, actor(ctx)); err != nil {
			return nil, err
		}
		c := &change{
			action: "ApplyPipeline", resource: "pipelines/" + name,
			details: map[string]any{"version": version, "digest": digest, "model": model},
			events: []event{{"gyre.pipeline.applied", &eventsv1.PipelineApplied{
				Pipeline: name, Version: version, Model: model, Dataset: p.Spec.Dataset, Digest: digest,
			}}},
		}
		modelIsNew, err := insertModel(ctx, tx, model, "Trained by pipeline "+name, map[string]string{"pipeline": name})
		if err != nil {
			return nil, err
		}
		if modelIsNew {
			c.events = append(c.events, modelCreated(ctx, model).events...)
			c.details["model_created"] = true
		}
		return c, nil
	})
	if err != nil {
		return nil, err
	}
	got, err := s.getPipeline(ctx, name, version)
	if err != nil {
		return nil, err
	}
	return &registryv1.ApplyPipelineResponse{Pipeline: got, Created: created}, nil
}

// invalidSpec lists every problem of a spec as a field violation.
func invalidSpec(err error) error {
	var fieldErrs pipeline.Errors
	if !errors.As(err, &fieldErrs) {
		return apierr.InvalidField("manifest", "%v", err)
	}
	var violations []apierr.FieldViolation
	for _, fe := range fieldErrs {
		violations = append(violations, apierr.FieldViolation{Field: fe.Path, Description: fe.Message})
	}
	return apierr.Invalid("invalid pipeline: "+fieldErrs.Error(), violations...)
}

func (s *Service) GetPipeline(ctx context.Context, req *registryv1.GetPipelineRequest) (*registryv1.Pipeline, error) {
	return s.getPipeline(ctx, req.GetPipeline(), req.GetVersion())
}

const pipelineColumns = `name, version, model, dataset, spec, digest, create_time, created_by`

func scanPipeline(row pgx.Row) (*registryv1.Pipeline, error) {
	var p registryv1.Pipeline
	var spec []byte
	var created time.Time
	if err := row.Scan(&p.Name, &p.Version, &p.Model, &p.Dataset, &spec, &p.Digest, &created, &p.CreatedBy); err != nil {
		return nil, err
	}
	p.Spec = &structpb.Struct{}
	if err := protojson.Unmarshal(spec, p.Spec); err != nil {
		return nil, err
	}
	p.CreateTime = timestamppb.New(created)
	return &p, nil
}

func (s *Service) getPipeline(ctx context.Context, name string, version int64) (*registryv1.Pipeline, error) {
	p, err := scanPipeline(s.pool.QueryRow(ctx, `SELECT `+pipelineColumns+` FROM pipelines
		WHERE name = $1 AND ($2 = 0 OR version = $2) ORDER BY version DESC LIMIT 1`, name, version))
	if errors.Is(err, pgx.ErrNoRows) {
		if version > 0 {
			return nil, apierr.NotFound("pipeline %q has no version %d", name, version)
		}
		return nil, apierr.NotFound("pipeline %q not found", name)
	}
	return p, err
}

// ListPipelines lists the latest version of each pipeline.
func (s *Service) ListPipelines(ctx context.Context, req *registryv1.ListPipelinesRequest) (*registryv1.ListPipelinesResponse, error) {
	after, err := paging.Key(req.GetPageToken())
	if err != nil {
		return nil, err
	}
	limit := paging.Size(req.GetPageSize())
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT ON (name) `+pipelineColumns+` FROM pipelines
		WHERE name > $1 ORDER BY name, version DESC LIMIT $2`, after, limit+1)
	if err != nil {
		return nil, err
	}
	pipes, err := collect(rows, scanPipeline)
	if err != nil {
		return nil, err
	}
	resp := &registryv1.ListPipelinesResponse{Pipelines: pipes}
	if len(pipes) > limit {
		resp.Pipelines = pipes[:limit]
		resp.NextPageToken = paging.Token(pipes[limit-1].Name)
	}
	return resp, nil
}
