package inference

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/gyreml/gyre/pkg/blob"
	"github.com/gyreml/gyre/pkg/model"
	"github.com/gyreml/gyre/pkg/model/fetch"
)

// loadedModel is one verified bundle in memory, shared by every route
// target that serves its digest.
type loadedModel struct {
	digest   string
	model    model.Model
	manifest *model.Manifest
	inputs   []model.Input
	// index finds an input's position by name.
	index   map[string]int
	task    model.Task
	classes []string
}

func newLoadedModel(digest string, m model.Model, man *model.Manifest) *loadedModel {
	lm := &loadedModel{digest: digest, model: m, manifest: man, inputs: m.Inputs(), task: m.Task(), classes: m.Classes()}
	lm.index = make(map[string]int, len(lm.inputs))
	for i, in := range lm.inputs {
		lm.index[in.Name] = i
	}
	return lm
}

// inputNames lists the inputs for error messages.
func (lm *loadedModel) inputNames() string {
	names := make([]string, len(lm.inputs))
	for i, in := range lm.inputs {
		names[i] = in.Name
	}
	return strings.Join(names, ", ")
}

// modelStore loads bundles by digest and keeps each in memory while any
// route (or a SetRoute in progress) holds it: the same version in two
// environments loads once, and a version no route serves is let go.
type modelStore struct {
	blobs *blob.Store
	// dir receives downloads and unpacked bundles while they load.
	dir string
	log *slog.Logger

	mu      sync.Mutex
	entries map[string]*storeEntry
}

type storeEntry struct {
	refs  int
	ready chan struct{} // closed once m or err is set
	m     *loadedModel
	err   error
}

func newModelStore(blobs *blob.Store, dir string, log *slog.Logger) *modelStore {
	return &modelStore{blobs: blobs, dir: dir, log: log, entries: map[string]*storeEntry{}}
}

// acquire returns the model of a bundle, loading it unless another holder
// already has; every successful acquire is paired with a release.
func (s *modelStore) acquire(ctx context.Context, uri, digest string) (*loadedModel, error) {
	digest = strings.ToLower(digest)
	s.mu.Lock()
	e, ok := s.entries[digest]
	if ok {
		e.refs++
		s.mu.Unlock()
		select {
		case <-e.ready:
		case <-ctx.Done():
			s.release(digest)
			return nil, ctx.Err()
		}
		if e.err != nil {
			s.release(digest)
			return nil, e.err
		}
		return e.m, nil
	}
	e = &storeEntry{refs: 1, ready: make(chan struct{})}
	s.entries[digest] = e
	s.mu.Unlock()

	start := time.Now()
	m, man, err := s.load(ctx, uri, digest)
	if err != nil {
		e.err = err
	} else {
		e.m = newLoadedModel(digest, m, man)
		s.log.Info("model bundle loaded", "sha256", digest, "format", man.Format, "inputs", len(man.Inputs),
			"duration_ms", time.Since(start).Milliseconds())
	}
	close(e.ready)
	if err != nil {
		s.release(digest)
		return nil, err
	}
	return e.m, nil
}

// release drops one hold; the last one lets the model go.
func (s *modelStore) release(digest string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[digest]
	if !ok {
		return
	}
	e.refs--
	if e.refs <= 0 {
		delete(s.entries, digest)
		if e.m != nil {
			s.log.Info("model bundle unloaded", "sha256", digest)
		}
	}
}

// loaded is how many bundles are in memory (or loading).
func (s *modelStore) loaded() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.entries)
}

// load downloads, verifies and loads a bundle (fetch.Model: to a file in
// the store's directory, never whole in memory; a tampered bundle is refused).
func (s *modelStore) load(ctx context.Context, uri, digest string) (model.Model, *model.Manifest, error) {
	return fetch.Model(ctx, s.blobs, uri, digest, s.dir)
}
