package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gyreml/gyre/pkg/apierr"
	"github.com/gyreml/gyre/pkg/paging"
	eventsv1 "github.com/gyreml/gyre/pkg/pb/gyre/events/v1"
	registryv1 "github.com/gyreml/gyre/pkg/pb/gyre/registry/v1"
)

var statusNames = map[registryv1.VersionStatus]string{
	registryv1.VersionStatus_VERSION_STATUS_REGISTERED: "registered",
	registryv1.VersionStatus_VERSION_STATUS_EVALUATING: "evaluating",
	registryv1.VersionStatus_VERSION_STATUS_PASSED:     "passed",
	registryv1.VersionStatus_VERSION_STATUS_FAILED:     "failed",
	registryv1.VersionStatus_VERSION_STATUS_ARCHIVED:   "archived",
}

func statusFromName(name string) registryv1.VersionStatus {
	for k, v := range statusNames {
		if v == name {
			return k
		}
	}
	return registryv1.VersionStatus_VERSION_STATUS_UNSPECIFIED
}

func (s *Service) CreateModelVersion(ctx context.Context, req *registryv1.CreateModelVersionRequest) (*registryv1.ModelVersion, error) {
	for name, v := range req.GetMetrics() {
		if v != v { // NaN cannot be compared by gates or stored as JSON
			return nil, apierr.InvalidField("metrics["+name+"]", "must be a number, not NaN")
		}
	}
	lin := req.GetLineage()
	var version int64
	err := s.mutate(ctx, func(tx pgx.Tx) (*change, error) {
		var latest int64
		err := tx.QueryRow(ctx, `SELECT latest_version FROM models WHERE name = $1 FOR UPDATE`, req.GetModel()).Scan(&latest)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, apierr.NotFound("model %q not found", req.GetModel())
		}
		if err != nil {
			return nil, err
		}
		if job := lin.GetTrainingJob(); job != "" {
			// A retried job gets the version it registered before, not a second one.
			err := tx.QueryRow(ctx, `SELECT version FROM model_versions WHERE model = $1 AND training_job = $2`, req.GetModel(), job).Scan(&version)
			if err == nil {
				return nil, nil
			}
			if !errors.Is(err, pgx.ErrNoRows) {
				return nil, err
			}
		} else {
			var existing int64
			err := tx.QueryRow(ctx, `SELECT version FROM model_versions WHERE model = $1 AND artifact_sha256 = $2 ORDER BY version LIMIT 1`,
				req.GetModel(), req.GetArtifactSha256()).Scan(&existing)
			if err == nil {
				return nil, apierr.AlreadyExists("model %q version %d already has artifact sha256 %s", req.GetModel(), existing, req.GetArtifactSha256())
			}
			if !errors.Is(err, pgx.ErrNoRows) {
				return nil, err
			}
		}
		version = latest + 1
		params, err := protojson.Marshal(orEmptyStruct(req.GetParams()))
		if err != nil {
			return nil, err
		}
		linJSON, err := protojson.Marshal(lin)
		if err != nil {
			return nil, err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO model_versions
			(model, version, artifact_uri, artifact_sha256, size_bytes, format, params, metrics, tags, lineage, training_job)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, nullif($11, ''))`,
			req.GetModel(), version, req.GetArtifactUri(), req.GetArtifactSha256(), req.GetSizeBytes(), req.GetFormat(),
			params, jsonb(orEmpty(req.GetMetrics())), jsonb(orEmpty(req.GetTags())), linJSON, lin.GetTrainingJob()); err != nil {
			return nil, err
		}
		if _, err := tx.Exec(ctx, `UPDATE models SET latest_version = $2, update_time = now(), revision = revision + 1 WHERE name = $1`,
			req.GetModel(), version); err != nil {
			return nil, err
		}
		if err := insertEdges(ctx, tx, versionEdges(req.GetModel(), version, lin)); err != nil {
			return nil, err
		}
		return &change{
			action: "CreateModelVersion", resource: fmt.Sprintf("models/%s/versions/%d", req.GetModel(), version),
			details: map[string]any{"artifact_sha256": req.GetArtifactSha256(), "artifact_uri": req.GetArtifactUri(), "training_job": lin.GetTrainingJob()},
			events: []event{{"gyre.model.version.registered", &eventsv1.ModelVersionRegistered{
				Model: req.GetModel(), Version: version, ArtifactUri: req.GetArtifactUri(), ArtifactSha256: req.GetArtifactSha256(),
				Format: req.GetFormat(), Dataset: lin.GetDataset(), DatasetVersion: lin.GetDatasetVersion(), DatasetDigest: lin.GetDatasetDigest(),
				Pipeline: lin.GetPipeline(), PipelineVersion: lin.GetPipelineVersion(), TrainingJob: lin.GetTrainingJob(),
			}}},
		}, nil
	})
	if err != nil {
		return nil, err
	}
	return s.getVersion(ctx, req.GetModel(), version)
}

// versionEdges links a new version to where it came from:
// dataset -trained-> job -produced-> model version, pipeline -ran-> job.
func versionEdges(model string, version int64, lin *registryv1.VersionLineage) []*registryv1.LineageEdge {
	modelNode := fmt.Sprintf("model:%s@%d", model, version)
	target, relation := modelNode, "trained"
	var edges []*registryv1.LineageEdge
	if job := lin.GetTrainingJob(); job != "" {
		edges = append(edges, &registryv1.LineageEdge{From: "job:" + job, To: modelNode, Relation: "produced"})
		target, relation = "job:"+job, "trained"
	}
	if ds := lin.GetDataset(); ds != "" {
		node := "dataset:" + ds
		if lin.GetDatasetVersion() > 0 {
			node += "@" + strconv.FormatInt(lin.GetDatasetVersion(), 10)
		}
		edges = append(edges, &registryv1.LineageEdge{From: node, To: target, Relation: relation})
	}
	if p := lin.GetPipeline(); p != "" {
		node := "pipeline:" + p
		if lin.GetPipelineVersion() > 0 {
			node += "@" + strconv.FormatInt(lin.GetPipelineVersion(), 10)
		}
		edges = append(edges, &registryv1.LineageEdge{From: node, To: target, Relation: "configured"})
	}
	return edges
}

func (s *Service) GetModelVersion(ctx context.Context, req *registryv1.GetModelVersionRequest) (*registryv1.ModelVersion, error) {
	return s.getVersion(ctx, req.GetModel(), req.GetVersion())
}

const versionColumns = `v.model, v.version, v.artifact_uri, v.artifact_sha256, v.size_bytes, v.format, v.params, v.metrics, v.tags,
	v.status, v.status_reason, v.lineage, v.create_time, v.update_time, v.revision,
	coalesce((SELECT array_agg(a.alias ORDER BY a.alias) FROM aliases a WHERE a.model = v.model AND a.version = v.version), '{}')`

func scanVersion(row pgx.Row) (*registryv1.ModelVersion, error) {
	var (
		v                              registryv1.ModelVersion
		params, metrics, tags, lineage []byte
		status                         string
		createTime, updateTime         time.Time
		revision                       int64
	)
	if err := row.Scan(&v.Model, &v.Version, &v.ArtifactUri, &v.ArtifactSha256, &v.SizeBytes, &v.Format, &params, &metrics, &tags,
		&status, &v.StatusReason, &lineage, &createTime, &updateTime, &revision, &v.Aliases); err != nil {
		return nil, err
	}
	v.Params = &structpb.Struct{}
	v.Lineage = &registryv1.VersionLineage{}
	if err := protojson.Unmarshal(params, v.Params); err != nil {
		return nil, fmt.Errorf("decode params: %w", err)
	}
	if err := protojson.Unmarshal(lineage, v.Lineage); err != nil {
		return nil, fmt.Errorf("decode lineage: %w", err)
	}
	if err := json.Unmarshal(metrics, &v.Metrics); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(tags, &v.Tags); err != nil {
		return nil, err
	}
	v.Status, v.CreateTime, v.UpdateTime, v.Etag = statusFromName(status), timestamppb.New(createTime), timestamppb.New(updateTime), etag(revision)
	return &v, nil
}

func (s *Service) getVersion(ctx context.Context, model string, version int64) (*registryv1.ModelVersion, error) {
	v, err := scanVersion(s.pool.QueryRow(ctx, `SELECT `+versionColumns+` FROM model_versions v WHERE v.model = $1 AND v.version = $2`, model, version))
	if errors.Is(err, pgx.ErrNoRows) {
		if _, merr := s.getModel(ctx, s.pool, model); merr != nil {
			return nil, merr
		}
		return nil, apierr.NotFound("model %q has no version %d", model, version)
	}
	return v, err
}

func (s *Service) ListModelVersions(ctx context.Context, req *registryv1.ListModelVersionsRequest) (*registryv1.ListModelVersionsResponse, error) {
	before, ok, err := paging.IntKey(req.GetPageToken())
	if err != nil {
		return nil, err
	}
	if !ok {
		before = 1 << 62
	}
	if _, err := s.getModel(ctx, s.pool, req.GetModel()); err != nil {
		return nil, err
	}
	status := ""
	if req.GetStatus() != registryv1.VersionStatus_VERSION_STATUS_UNSPECIFIED {
		status = statusNames[req.GetStatus()]
	}
	limit := paging.Size(req.GetPageSize())
	rows, err := s.pool.Query(ctx, `SELECT `+versionColumns+` FROM model_versions v
		WHERE v.model = $1 AND v.version < $2 AND ($3 = '' OR v.status = $3) ORDER BY v.version DESC LIMIT $4`,
		req.GetModel(), before, status, limit+1)
	if err != nil {
		return nil, err
	}
	versions, err := collect(rows, scanVersion)
	if err != nil {
		return nil, err
	}
	resp := &registryv1.ListModelVersionsResponse{Versions: versions}
	if len(versions) > limit {
		resp.Versions = versions[:limit]
		resp.NextPageToken = paging.Token(strconv.FormatInt(versions[limit-1].Version, 10))
	}
	return resp, nil
}

func (s *Service) UpdateModelVersion(ctx context.Context, req *registryv1.UpdateModelVersionRequest) (*registryv1.ModelVersion, error) {
	err := s.mutate(ctx, func(tx pgx.Tx) (*change, error) {
		var (
			revision       int64
			status, reason string
			metrics, tags  []byte
		)
		err := tx.QueryRow(ctx, `SELECT revision, status, status_reason, metrics, tags FROM model_versions WHERE model = $1 AND version = $2 FOR UPDATE`,
			req.GetModel(), req.GetVersion()).Scan(&revision, &status, &reason, &metrics, &tags)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, apierr.NotFound("model %q has no version %d", req.GetModel(), req.GetVersion())
		}
		if err != nil {
			return nil, err
		}
		if req.GetEtag() != "" && req.GetEtag() != etag(revision) {
			return nil, apierr.Conflict("model %q version %d changed since etag %s (now %s): read it again", req.GetModel(), req.GetVersion(), req.GetEtag(), etag(revision))
		}
		var changed []string
		if req.GetStatus() != registryv1.VersionStatus_VERSION_STATUS_UNSPECIFIED {
			status, reason = statusNames[req.GetStatus()], req.GetStatusReason()
			changed = append(changed, "status")
		}
		mergedMetrics, err := mergeJSON(metrics, req.GetMetrics())
		if err != nil {
			return nil, err
		}
		mergedTags, err := mergeJSON(tags, req.GetTags())
		if err != nil {
			return nil, err
		}
		if len(req.GetMetrics()) > 0 {
			changed = append(changed, "metrics")
		}
		if len(req.GetTags()) > 0 {
			changed = append(changed, "tags")
		}
		if len(changed) == 0 {
			return nil, apierr.InvalidField("status", "nothing to update: give status, metrics or tags")
		}
		if _, err := tx.Exec(ctx, `UPDATE model_versions SET status = $3, status_reason = $4, metrics = $5, tags = $6,
			update_time = now(), revision = revision + 1 WHERE model = $1 AND version = $2`,
			req.GetModel(), req.GetVersion(), status, reason, mergedMetrics, mergedTags); err != nil {
			return nil, err
		}
		return &change{
			action: "UpdateModelVersion", resource: fmt.Sprintf("models/%s/versions/%d", req.GetModel(), req.GetVersion()),
			details: map[string]any{"changed": strings.Join(changed, ","), "status": status, "status_reason": reason},
			events: []event{{"gyre.model.version.updated", &eventsv1.ModelVersionUpdated{
				Model: req.GetModel(), Version: req.GetVersion(), Status: status, StatusReason: reason,
			}}},
		}, nil
	})
	if err != nil {
		return nil, err
	}
	return s.getVersion(ctx, req.GetModel(), req.GetVersion())
}

// mergeJSON overlays updates onto a stored JSON object.
func mergeJSON[V any](stored []byte, updates map[string]V) ([]byte, error) {
	m := map[string]V{}
	if err := json.Unmarshal(stored, &m); err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(updates))
	for k := range updates {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		m[k] = updates[k]
	}
	return json.Marshal(m)
}

func orEmpty[V any](m map[string]V) map[string]V {
	if m == nil {
		return map[string]V{}
	}
	return m
}

func orEmptyStruct(s *structpb.Struct) *structpb.Struct {
	if s == nil {
		return &structpb.Struct{}
	}
	return s
}
