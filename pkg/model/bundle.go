package model

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// ManifestFile is the name of a bundle's manifest, at the bundle's root.
const ManifestFile = "gyre-model.json"

// maxManifestBytes bounds what ReadManifest reads; a manifest is small.
const maxManifestBytes = 16 << 20

// Manifest describes a model bundle: a directory holding this manifest and
// the model's files. Loading a bundle checks every file against its sha256
// here, so a bundle read back is the bundle written.
type Manifest struct {
	// Format names the loader that reads the files ("gyre/logistic").
	Format  string   `json:"format"`
	Task    Task     `json:"task"`
	Inputs  []Input  `json:"inputs"`
	Target  string   `json:"target,omitempty"`
	Classes []string `json:"classes,omitempty"`
	// Params are the training hyperparameters, as given to the trainer.
	Params  map[string]any     `json:"params,omitempty"`
	Metrics map[string]float64 `json:"metrics,omitempty"`
	// Preprocessing describes what the model does to its inputs before
	// scoring, for people and tools; the model's own files are what runs.
	Preprocessing json.RawMessage `json:"preprocessing,omitempty"`
	// Lineage: dataset version digest, pipeline, trainer, worker ...
	Lineage map[string]string `json:"lineage,omitempty"`
	// Files maps each file's slash-separated path in the bundle to the
	// lower-case hex sha256 of its content.
	Files       map[string]string `json:"files"`
	CreatedAt   time.Time         `json:"createdAt"`
	GyreVersion string            `json:"gyreVersion,omitempty"`
}

// Validate checks that the manifest is complete and consistent.
func (m *Manifest) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if m.Format == "" {
		bad("format: required")
	}
	switch m.Task {
	case Binary, Multiclass:
		switch {
		case m.Task == Binary && len(m.Classes) != 2:
			bad("classes: a binary model has 2, got %d", len(m.Classes))
		case m.Task == Multiclass && len(m.Classes) < 2:
			bad("classes: a multiclass model has at least 2, got %d", len(m.Classes))
		}
		if dup, ok := duplicate(m.Classes); ok {
			bad("classes: %q appears twice", dup)
		}
	case Regression:
		if len(m.Classes) > 0 {
			bad("classes: a regression model has none, got %d", len(m.Classes))
		}
	default:
		bad("task: want binary, multiclass or regression, got %q", m.Task)
	}
	if len(m.Inputs) == 0 {
		bad("inputs: at least one is required")
	}
	names := make([]string, len(m.Inputs))
	for i, in := range m.Inputs {
		names[i] = in.Name
		if in.Name == "" {
			bad("inputs[%d].name: required", i)
		}
		if in.Kind != Numeric && in.Kind != Categorical {
			bad("inputs[%d].kind: want numeric or categorical, got %q", i, in.Kind)
		}
	}
	if dup, ok := duplicate(names); ok {
		bad("inputs: %q appears twice", dup)
	}
	for _, name := range slices.Sorted(maps.Keys(m.Files)) {
		if err := checkFileName(name); err != nil {
			bad("files: %w", err)
		}
		if sum := m.Files[name]; len(sum) != sha256.Size*2 || strings.ToLower(sum) != sum || !isHex(sum) {
			bad("files: %s: sha256 must be 64 lower-case hex digits", name)
		}
	}
	for name, v := range m.Metrics {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			bad("metrics: %s is %v; JSON holds only finite numbers", name, v)
		}
	}
	if len(m.Preprocessing) > 0 && !json.Valid(m.Preprocessing) {
		bad("preprocessing: not valid JSON")
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid manifest: %w", err)
	}
	return nil
}

// checkFileName accepts a relative, clean, slash-separated path that stays
// inside the bundle and is not the manifest.
func checkFileName(name string) error {
	if !fs.ValidPath(name) || name == "." || strings.Contains(name, `\`) {
		return fmt.Errorf("%q: want a relative slash-separated path inside the bundle, without . or .. elements", name)
	}
	if name == ManifestFile {
		return fmt.Errorf("%q: the manifest does not list itself", name)
	}
	return nil
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil
}

func duplicate(xs []string) (string, bool) {
	seen := make(map[string]bool, len(xs))
	for _, x := range xs {
		if seen[x] {
			return x, true
		}
		seen[x] = true
	}
	return "", false
}

// WriteBundle writes files into dir (created if needed) and then the
// manifest, with m.Files set to their sha256 (and m.CreatedAt to now when
// zero). The manifest is written last, so a directory that has one holds the
// whole bundle.
func WriteBundle(dir string, m *Manifest, files map[string][]byte) error {
	m.Files = make(map[string]string, len(files))
	for name, data := range files {
		sum := sha256.Sum256(data)
		m.Files[name] = hex.EncodeToString(sum[:])
	}
	if m.CreatedAt.IsZero() {
		m.CreatedAt = time.Now().UTC()
	}
	if err := m.Validate(); err != nil {
		return fmt.Errorf("write bundle %s: %w", dir, err)
	}
	manifest, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("write bundle %s: encode manifest: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write bundle: %w", err)
	}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("write bundle %s: %w", dir, err)
		}
		if err := os.WriteFile(p, files[name], 0o644); err != nil {
			return fmt.Errorf("write bundle %s: %w", dir, err)
		}
	}
	tmp := filepath.Join(dir, "."+ManifestFile+".tmp")
	if err := os.WriteFile(tmp, append(manifest, '\n'), 0o644); err != nil {
		return fmt.Errorf("write bundle %s: %w", dir, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, ManifestFile)); err != nil {
		return fmt.Errorf("write bundle %s: %w", dir, err)
	}
	return nil
}

// ReadManifest reads and validates the manifest of the bundle in dir. It
// does not check the files: VerifyBundle does.
func ReadManifest(dir string) (*Manifest, error) {
	f, err := os.Open(filepath.Join(dir, ManifestFile))
	if err != nil {
		return nil, fmt.Errorf("read bundle manifest: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxManifestBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read bundle manifest %s: %w", f.Name(), err)
	}
	if len(data) > maxManifestBytes {
		return nil, fmt.Errorf("read bundle manifest %s: larger than %d bytes", f.Name(), maxManifestBytes)
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("read bundle manifest %s: %w", f.Name(), err)
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("read bundle manifest %s: %w", f.Name(), err)
	}
	return &m, nil
}

// VerifyBundle reads the manifest of the bundle in dir and checks that every
// file it lists is there, a regular file inside dir (symbolic links are not
// followed out of it), with its sha256. The error names the first file that
// fails.
func VerifyBundle(dir string) (*Manifest, error) {
	m, err := ReadManifest(dir)
	if err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("verify bundle: %w", err)
	}
	defer root.Close()
	for _, name := range slices.Sorted(maps.Keys(m.Files)) {
		if err := verifyFile(root, name, m.Files[name]); err != nil {
			return nil, fmt.Errorf("verify bundle %s: file %s: %w", dir, name, err)
		}
	}
	return m, nil
}

func verifyFile(root *os.Root, name, want string) error {
	f, err := openRegular(root, name)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("sha256 is %s, the manifest says %s: the file was changed or damaged", got, want)
	}
	return nil
}

func openRegular(root *os.Root, name string) (*os.File, error) {
	fi, err := root.Lstat(filepath.FromSlash(name))
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file (%s)", fi.Mode().Type())
	}
	return root.Open(filepath.FromSlash(name))
}

// ReadFile reads one file of a bundle and checks it against the manifest's
// sha256 as it reads, so a loader sees exactly the bytes verified.
func ReadFile(dir string, m *Manifest, name string) ([]byte, error) {
	want, ok := m.Files[name]
	if !ok {
		return nil, fmt.Errorf("bundle %s: file %s is not in the manifest", dir, name)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("read bundle file: %w", err)
	}
	defer root.Close()
	f, err := openRegular(root, name)
	if err != nil {
		return nil, fmt.Errorf("bundle %s: file %s: %w", dir, name, err)
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("bundle %s: file %s: %w", dir, name, err)
	}
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); got != want {
		return nil, fmt.Errorf("bundle %s: file %s: sha256 is %s, the manifest says %s: the file was changed or damaged", dir, name, got, want)
	}
	return data, nil
}

// Loader builds a model from a verified bundle; it reads its files with
// ReadFile.
type Loader func(dir string, m *Manifest) (Model, error)

var formats = struct {
	sync.RWMutex
	m map[string]Loader
}{m: make(map[string]Loader)}

// RegisterFormat makes Load read bundles of a format. Packages of built-in
// formats register from init, so importing them (for side effects) is
// enough. Registering a format twice panics.
func RegisterFormat(format string, l Loader) {
	formats.Lock()
	defer formats.Unlock()
	if format == "" || l == nil {
		panic("model: RegisterFormat needs a format name and a loader")
	}
	if _, ok := formats.m[format]; ok {
		panic("model: format " + format + " registered twice")
	}
	formats.m[format] = l
}

// Formats are the registered format names, sorted.
func Formats() []string {
	formats.RLock()
	defer formats.RUnlock()
	return slices.Sorted(maps.Keys(formats.m))
}

// Load verifies the bundle in dir and loads its model with its format's
// loader.
func Load(dir string) (Model, *Manifest, error) {
	m, err := VerifyBundle(dir)
	if err != nil {
		return nil, nil, err
	}
	formats.RLock()
	l, ok := formats.m[m.Format]
	formats.RUnlock()
	if !ok {
		return nil, nil, fmt.Errorf("load bundle %s: unknown format %q; known formats: %s", dir, m.Format, strings.Join(Formats(), ", "))
	}
	mdl, err := l(dir, m)
	if err != nil {
		return nil, nil, fmt.Errorf("load bundle %s (format %s): %w", dir, m.Format, err)
	}
	return mdl, m, nil
}

// Saver is a model that can write itself as a bundle: its format name and
// its files, by slash-separated path.
type Saver interface {
	MarshalBundle() (format string, files map[string][]byte, err error)
}

// Describer is a model that can describe its preprocessing for the
// manifest.
type Describer interface {
	Preprocessing() json.RawMessage
}

// Save writes mdl as a bundle in dir. m carries what the model does not know
// (target, params, metrics, lineage); Save fills in the format, task,
// inputs, classes, preprocessing (when mdl is a Describer) and files.
func Save(dir string, mdl Model, m *Manifest) error {
	s, ok := mdl.(Saver)
	if !ok {
		return fmt.Errorf("save model: %T cannot be saved as a bundle", mdl)
	}
	format, files, err := s.MarshalBundle()
	if err != nil {
		return fmt.Errorf("save model: %w", err)
	}
	m.Format, m.Task, m.Inputs, m.Classes = format, mdl.Task(), mdl.Inputs(), mdl.Classes()
	if d, ok := mdl.(Describer); ok {
		m.Preprocessing = d.Preprocessing()
	}
	return WriteBundle(dir, m, files)
}

// CategoriesFile is the optional bundle file that maps the codes of
// categorical inputs to their values, for formats that store codes
// (xgboost/json, lightgbm/text): {"input": ["value of code 0", ...]}.
const CategoriesFile = "categories.json"

// ReadCategories reads the bundle's CategoriesFile; nil when it has none.
func ReadCategories(dir string, m *Manifest) (map[string][]string, error) {
	if _, ok := m.Files[CategoriesFile]; !ok {
		return nil, nil
	}
	raw, err := ReadFile(dir, m, CategoriesFile)
	if err != nil {
		return nil, err
	}
	var cats map[string][]string
	if err := json.Unmarshal(raw, &cats); err != nil {
		return nil, fmt.Errorf("decode %s: want {\"input\": [\"value of code 0\", ...]}: %w", CategoriesFile, err)
	}
	return cats, nil
}
