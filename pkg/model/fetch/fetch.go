// Package fetch reads what a model version was trained and judged on out of
// the artifact store, verified: its bundle (loaded with the code the
// inference server runs) and its dataset version. The evaluator and the
// deployer's smoke test share it, so both score a version alike.
package fetch

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"

	"github.com/gyreml/gyre/pkg/blob"
	"github.com/gyreml/gyre/pkg/model"
	_ "github.com/gyreml/gyre/pkg/model/formats" // every bundle format loads
	"github.com/gyreml/gyre/pkg/model/table"
)

// Model downloads a packed bundle, checks its sha256 and every file's, and
// loads it. workDir holds the unpacked files while loading ("" = temp dir).
func Model(ctx context.Context, blobs *blob.Store, uri, sha256, workDir string) (model.Model, *model.Manifest, error) {
	key, ok := blobs.KeyOf(uri)
	if !ok {
		return nil, nil, fmt.Errorf("bundle %s is not in the artifact store", uri)
	}
	rc, err := blobs.Get(ctx, key, sha256)
	if err != nil {
		return nil, nil, fmt.Errorf("read bundle: %w", err)
	}
	defer rc.Close()
	// Read whole before unpacking, so a digest mismatch (reported at EOF) stops it.
	raw, err := io.ReadAll(rc)
	if err != nil {
		return nil, nil, fmt.Errorf("bundle %s: %w", uri, err)
	}
	dir, err := os.MkdirTemp(workDir, "gyre-bundle-*")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(dir)
	if err := model.Unpack(bytes.NewReader(raw), dir); err != nil {
		return nil, nil, fmt.Errorf("unpack bundle: %w", err)
	}
	m, man, err := model.Load(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("load bundle: %w", err)
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
