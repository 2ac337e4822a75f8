package inference

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/gyreml/gyre/pkg/blob"
	"github.com/gyreml/gyre/pkg/model"
	_ "github.com/gyreml/gyre/pkg/model/formats" // every bundle format loads
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

// load downloads the packed bundle to a file (never whole in memory),
// checking its sha256 as it arrives, unpacks it and loads it: model.Load
// checks every file against the manifest, so a tampered bundle is refused.
// The files are removed once loaded: models keep what they need in memory.
func (s *modelStore) load(ctx context.Context, uri, digest string) (model.Model, *model.Manifest, error) {
	if s.blobs == nil {
		return nil, nil, errors.New("no artifact store configured")
	}
	key, ok := s.blobs.KeyOf(uri)
	if !ok {
		return nil, nil, fmt.Errorf("bundle %s is not in the artifact store", uri)
	}
	work, err := os.MkdirTemp(s.dir, "gyre-bundle-"+digest[:min(12, len(digest))]+"-*")
	if err != nil {
		return nil, nil, fmt.Errorf("bundle %s: %w", uri, err)
	}
	defer os.RemoveAll(work)

	rc, err := s.blobs.Get(ctx, key, digest)
	if err != nil {
		return nil, nil, fmt.Errorf("read bundle %s: %w", uri, err)
	}
	defer rc.Close()
	f, err := os.CreateTemp(work, "bundle-*.tar.gz")
	if err != nil {
		return nil, nil, fmt.Errorf("bundle %s: %w", uri, err)
	}
	defer f.Close()
	// The digest is checked at EOF: nothing is unpacked before it matched.
	if _, err := io.Copy(f, rc); err != nil {
		return nil, nil, fmt.Errorf("read bundle %s: %w", uri, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, nil, fmt.Errorf("bundle %s: %w", uri, err)
	}
	dir := work + string(os.PathSeparator) + "bundle"
	if err := model.Unpack(f, dir); err != nil {
		return nil, nil, fmt.Errorf("unpack bundle %s: %w", uri, err)
	}
	m, man, err := model.Load(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("load bundle %s: %w", uri, err)
	}
	return m, man, nil
}
