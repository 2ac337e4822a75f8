package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ingestionv1 "github.com/gyreml/gyre/pkg/pb/gyre/ingestion/v1"
	registryv1 "github.com/gyreml/gyre/pkg/pb/gyre/registry/v1"
	"github.com/gyreml/gyre/pkg/pipeline"
	"github.com/gyreml/gyre/pkg/profile"
)

// versionInfo is what the monitor needs to know of a model version: its
// pipeline's monitoring section and where its training data is.
type versionInfo struct {
	pipeline       string
	monitoring     pipeline.Monitoring
	sensitive      []string
	minGroupSize   int
	dataset        string
	datasetVersion int64
}

// defaultInfo monitors a version that has no pipeline (imported, or not in
// the registry) with the pipeline defaults.
func defaultInfo() *versionInfo {
	p := &pipeline.Pipeline{}
	p.SetDefaults()
	return &versionInfo{monitoring: p.Spec.Monitoring, minGroupSize: p.Spec.Evaluation.MinGroupSize}
}

// Cache sizes and lifetimes. A version's lineage never changes, so what was
// found is kept; what was not is asked again a little later.
const (
	maxCachedVersions = 4096
	maxCachedProfiles = 32
	negativeTTL       = time.Minute
)

type cachedVersion struct {
	info    *versionInfo
	expires time.Time // zero: never
}

type versionCache struct {
	mu sync.Mutex
	m  map[string]cachedVersion
}

func newVersionCache() *versionCache { return &versionCache{m: map[string]cachedVersion{}} }

// version resolves a model version's monitoring settings: its lineage's
// pipeline version, or the defaults when it has none. An error means the
// registry could not be asked; the caller retries.
func (s *Service) version(ctx context.Context, model string, version int64) (*versionInfo, error) {
	key := fmt.Sprintf("%s@%d", model, version)
	c := s.versions
	c.mu.Lock()
	hit, ok := c.m[key]
	c.mu.Unlock()
	if ok && (hit.expires.IsZero() || time.Now().Before(hit.expires)) {
		return hit.info, nil
	}
	info, permanent, err := s.lookupVersion(ctx, model, version)
	if err != nil {
		return nil, err
	}
	entry := cachedVersion{info: info}
	if !permanent {
		entry.expires = time.Now().Add(negativeTTL)
	}
	c.mu.Lock()
	if len(c.m) >= maxCachedVersions {
		clear(c.m)
	}
	c.m[key] = entry
	c.mu.Unlock()
	return info, nil
}

func (s *Service) lookupVersion(ctx context.Context, model string, version int64) (info *versionInfo, permanent bool, err error) {
	mv, err := s.registry.GetModelVersion(ctx, &registryv1.GetModelVersionRequest{Model: model, Version: version})
	if status.Code(err) == codes.NotFound {
		return defaultInfo(), false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("get model version %s@%d: %w", model, version, err)
	}
	lin := mv.GetLineage()
	info = defaultInfo()
	info.dataset, info.datasetVersion = lin.GetDataset(), lin.GetDatasetVersion()
	if lin.GetPipeline() == "" {
		return info, true, nil
	}
	p, err := s.registry.GetPipeline(ctx, &registryv1.GetPipelineRequest{Pipeline: lin.GetPipeline(), Version: lin.GetPipelineVersion()})
	if status.Code(err) == codes.NotFound {
		return info, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("get pipeline %s@%d: %w", lin.GetPipeline(), lin.GetPipelineVersion(), err)
	}
	spec, err := pipeline.FromStruct(p.GetSpec())
	if err != nil {
		// A stored pipeline that no longer parses: monitor with the defaults rather than not at all.
		s.log.Warn("stored pipeline does not parse", "pipeline", lin.GetPipeline(), "version", lin.GetPipelineVersion(), "err", err)
		return info, true, nil
	}
	info.pipeline = lin.GetPipeline()
	info.monitoring = spec.Spec.Monitoring
	info.sensitive = spec.Spec.Evaluation.SensitiveAttributes
	info.minGroupSize = spec.Spec.Evaluation.MinGroupSize
	return info, true, nil
}

// reference is a training dataset version's profile, the reference of
// feature drift; nil (no error) when the version has none.
type reference struct {
	name    string // profile:<dataset>@<version>
	profile *profile.Profile
}

type profileCache struct {
	mu sync.Mutex
	m  map[string]*cachedProfile
}

type cachedProfile struct {
	ref     *reference
	expires time.Time
}

func newProfileCache() *profileCache { return &profileCache{m: map[string]*cachedProfile{}} }

// reference loads (once per dataset version) the profile ingestion stored
// for the version's training data, verifying its digest. A version with no
// dataset, or a dataset version without a profile, has none.
func (s *Service) reference(ctx context.Context, info *versionInfo) (*reference, error) {
	if info.dataset == "" || info.datasetVersion == 0 {
		return nil, nil
	}
	key := fmt.Sprintf("%s@%d", info.dataset, info.datasetVersion)
	c := s.profiles
	c.mu.Lock()
	hit, ok := c.m[key]
	c.mu.Unlock()
	if ok && (hit.expires.IsZero() || time.Now().Before(hit.expires)) {
		return hit.ref, nil
	}
	ref, err := s.loadProfile(ctx, info.dataset, info.datasetVersion)
	entry := &cachedProfile{ref: ref}
	switch {
	case errors.Is(err, errNoProfile):
		s.log.Warn("no reference profile: feature drift is not scored", "dataset", info.dataset, "version", info.datasetVersion, "err", err)
		entry.expires = time.Now().Add(negativeTTL)
	case err != nil:
		return nil, err
	}
	c.mu.Lock()
	if len(c.m) >= maxCachedProfiles {
		clear(c.m)
	}
	c.m[key] = entry
	c.mu.Unlock()
	return entry.ref, nil
}

var errNoProfile = errors.New("no profile")

func (s *Service) loadProfile(ctx context.Context, dataset string, version int64) (*reference, error) {
	dv, err := s.ingestion.GetDatasetVersion(ctx, &ingestionv1.GetDatasetVersionRequest{Dataset: dataset, Version: version})
	if status.Code(err) == codes.NotFound {
		return nil, fmt.Errorf("%w: dataset %s@%d not found", errNoProfile, dataset, version)
	}
	if err != nil {
		return nil, fmt.Errorf("get dataset %s@%d: %w", dataset, version, err)
	}
	key, ok := s.blobs.KeyOf(dv.GetProfileUri())
	if !ok {
		return nil, fmt.Errorf("%w: dataset %s@%d has no profile in this store (%q)", errNoProfile, dataset, version, dv.GetProfileUri())
	}
	// Profiles are stored content-addressed (profiles/<dataset>/sha256/<hex>):
	// the key names the digest the bytes must have.
	rc, err := s.blobs.Get(ctx, key, path.Base(key))
	if err != nil {
		return nil, fmt.Errorf("read profile of %s@%d: %w", dataset, version, err)
	}
	defer rc.Close()
	raw, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("read profile of %s@%d: %w", dataset, version, err)
	}
	var p profile.Profile
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, fmt.Errorf("%w: profile of %s@%d does not decode: %v", errNoProfile, dataset, version, err)
	}
	return &reference{name: fmt.Sprintf("profile:%s@%d", dataset, version), profile: &p}, nil
}
