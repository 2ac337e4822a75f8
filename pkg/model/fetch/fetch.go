// Package fetch reads what a model version was trained and judged on out of
// the artifact store, verified: its bundle (loaded with the code the
// inference server runs) and its dataset version. The inference server, the
// evaluator and the deployer's smoke test share it, so all load a version
// alike.
package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/gyreml/gyre/pkg/blob"
	"github.com/gyreml/gyre/pkg/model"
	_ "github.com/gyreml/gyre/pkg/model/formats" // every bundle format loads
	"github.com/gyreml/gyre/pkg/model/table"
)

// Model downloads a packed bundle to a file in workDir ("" = the temp dir;
// never whole in memory), checking its sha256 as it arrives, unpacks it and
// loads it: model.Load checks every file against the manifest, so a
// tampered bundle is refused. The files are removed once loaded: models keep
// what they need in memory. The inference server loads bundles so too.
func Model(ctx context.Context, blobs *blob.Store, uri, sha256, workDir string) (model.Model, *model.Manifest, error) {
	if blobs == nil {
		return nil, nil, errors.New("no artifact store configured")
	}
	key, ok := blobs.KeyOf(uri)
	if !ok {
		return nil, nil, fmt.Errorf("bundle %s is not in the artifact store", uri)
	}
	work, err := os.MkdirTemp(workDir, "gyre-bundle-"+sha256[:min(12, len(sha256))]+"-*")
	if err != nil {
		return nil, nil, fmt.Errorf("bundle %s: %w", uri, err)
	}
	defer os.RemoveAll(work)

	rc, err := blobs.Get(ctx, key, sha256)
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
	dir := filepath.Join(work, "bundle")
	if err := model.Unpack(f, dir); err != nil {
		return nil, nil, fmt.Errorf("unpack bundle %s: %w", uri, err)
	}
	m, man, err := model.Load(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("load bundle %s: %w", uri, err)
	}
	return m, man, nil
}

// Table reads a dataset version's CSV, checking its sha256.
func Table(ctx context.Context, blobs *blob.Store, uri, sha256 string) (*table.Table, error) {
	key, ok := blobs.KeyOf(uri)
	if !ok {
		return nil, fmt.Errorf("dataset %s is not in the artifact store", uri)
	}
	rc, err := blobs.Get(ctx, key, sha256)
	if err != nil {
		return nil, fmt.Errorf("read dataset: %w", err)
	}
	defer rc.Close()
	return table.ReadCSV(rc, nil)
}
