package model

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// constModel predicts the value stored in its one file.
type constModel struct{ v float64 }

func (m constModel) Inputs() []Input   { return []Input{{Name: "x", Kind: Numeric}} }
func (m constModel) Task() Task        { return Regression }
func (m constModel) Classes() []string { return nil }
func (m constModel) Predict(rows []Row, out []Prediction) error {
	for i := range rows {
		out[i] = Prediction{Value: m.v}
	}
	return nil
}
func (m constModel) MarshalBundle() (string, map[string][]byte, error) {
	data, err := json.Marshal(m.v)
	return "test/const", map[string][]byte{"weights/v.json": data}, err
}

func init() {
	RegisterFormat("test/const", func(dir string, m *Manifest) (Model, error) {
		data, err := ReadFile(dir, m, "weights/v.json")
		if err != nil {
			return nil, err
		}
		var v float64
		return constModel{v}, json.Unmarshal(data, &v)
	})
}

func saveConst(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "bundle")
	m := &Manifest{Target: "y", Lineage: map[string]string{"dataset": "sha256:abc"}, Metrics: map[string]float64{"rmse": 0.5}}
	if err := Save(dir, constModel{2.5}, m); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestBundleRoundTrip(t *testing.T) {
	dir := saveConst(t)
	mdl, m, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]Prediction, 1)
	if err := mdl.Predict([]Row{{{F: 1}}}, out); err != nil || out[0].Value != 2.5 {
		t.Errorf("predict = %v, %v; want 2.5", out, err)
	}
	if m.Format != "test/const" || m.Task != Regression || m.Target != "y" || m.Lineage["dataset"] != "sha256:abc" ||
		m.Metrics["rmse"] != 0.5 || len(m.Files["weights/v.json"]) != 64 || m.CreatedAt.IsZero() {
		t.Errorf("manifest read back: %+v", m)
	}
}

func TestVerifyBundleTamper(t *testing.T) {
	dir := saveConst(t)
	p := filepath.Join(dir, "weights", "v.json")
	data, _ := os.ReadFile(p)
	data[0] ^= 1
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := VerifyBundle(dir)
	if err == nil || !strings.Contains(err.Error(), "file weights/v.json: sha256") {
		t.Errorf("changed byte: err = %v, want one naming weights/v.json", err)
	}
	if _, _, err := Load(dir); err == nil {
		t.Error("Load of a tampered bundle: no error")
	}

	os.Remove(p)
	if _, err := VerifyBundle(dir); err == nil || !strings.Contains(err.Error(), "weights/v.json") {
		t.Errorf("missing file: err = %v", err)
	}

	// A link to a file outside the bundle with the right content is refused.
	outside := filepath.Join(t.TempDir(), "v.json")
	os.WriteFile(outside, []byte("2.5"), 0o644)
	if err := os.Symlink(outside, p); err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyBundle(dir); err == nil || !strings.Contains(err.Error(), "weights/v.json: not a regular file") {
		t.Errorf("symlink: err = %v", err)
	}
}

func TestManifestValidate(t *testing.T) {
	good := func() *Manifest {
		return &Manifest{Format: "f", Task: Binary, Classes: []string{"no", "yes"}, Inputs: []Input{{Name: "x", Kind: Numeric}},
			Files: map[string]string{"m.json": strings.Repeat("a", 64)}}
	}
	if err := good().Validate(); err != nil {
		t.Fatal(err)
	}
	for name, change := range map[string]func(*Manifest){
		"format":        func(m *Manifest) { m.Format = "" },
		"task":          func(m *Manifest) { m.Task = "ranking" },
		"classes":       func(m *Manifest) { m.Classes = []string{"a"} },
		"inputs":        func(m *Manifest) { m.Inputs = nil },
		"kind":          func(m *Manifest) { m.Inputs[0].Kind = "text" },
		"..":            func(m *Manifest) { m.Files = map[string]string{"../m.json": strings.Repeat("a", 64)} },
		"absolute":      func(m *Manifest) { m.Files = map[string]string{"/etc/passwd": strings.Repeat("a", 64)} },
		"itself":        func(m *Manifest) { m.Files = map[string]string{ManifestFile: strings.Repeat("a", 64)} },
		"sha256":        func(m *Manifest) { m.Files = map[string]string{"m.json": "abc"} },
		"preprocessing": func(m *Manifest) { m.Preprocessing = json.RawMessage("{") },
	} {
		m := good()
		change(m)
		if err := m.Validate(); err == nil {
			t.Errorf("%s: no error for %+v", name, m)
		}
	}
}

func TestLoadUnknownFormat(t *testing.T) {
	dir := t.TempDir()
	m := &Manifest{Format: "onnx", Task: Regression, Inputs: []Input{{Name: "x", Kind: Numeric}}}
	if err := WriteBundle(dir, m, map[string][]byte{"model.onnx": []byte("x")}); err != nil {
		t.Fatal(err)
	}
	_, _, err := Load(dir)
	if err == nil || !strings.Contains(err.Error(), `unknown format "onnx"`) || !strings.Contains(err.Error(), "test/const") {
		t.Errorf("err = %v, want it to name the format and list the known ones", err)
	}
}

func TestPackUnpack(t *testing.T) {
	dir := saveConst(t)
	var a, b bytes.Buffer
	if err := Pack(dir, &a); err != nil {
		t.Fatal(err)
	}
	if err := Pack(dir, &b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("two packs of one bundle differ")
	}
	out := filepath.Join(t.TempDir(), "out")
	if err := Unpack(bytes.NewReader(a.Bytes()), out); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Load(out); err != nil {
		t.Errorf("load unpacked bundle: %v", err)
	}
}

// archive builds a tar.gz of the given headers, each with Size bytes of
// content unless content is short (an over-large header with no data).
func archive(t *testing.T, hdrs ...*tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, h := range hdrs {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg && h.Size < 1<<20 {
			tw.Write(bytes.Repeat([]byte("x"), int(h.Size)))
		}
	}
	tw.Flush()
	gz.Close()
	return buf.Bytes()
}

func TestUnpackRefuses(t *testing.T) {
	reg := func(name string, size int64) *tar.Header {
		return &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: 0o644}
	}
	for name, data := range map[string][]byte{
		"dotdot":     archive(t, reg("../evil", 1)),
		"nested ..":  archive(t, reg("a/../../evil", 1)),
		"absolute":   archive(t, reg("/tmp/evil", 1)),
		"symlink":    archive(t, &tar.Header{Typeflag: tar.TypeSymlink, Name: "link", Linkname: "/etc/passwd"}),
		"hard link":  archive(t, &tar.Header{Typeflag: tar.TypeLink, Name: "link", Linkname: "x"}),
		"over-large": archive(t, reg("big", MaxBundleFileBytes+1)),
		"twice":      archive(t, reg("a", 1), reg("a", 1)),
	} {
		parent := t.TempDir()
		err := Unpack(bytes.NewReader(data), filepath.Join(parent, "out"))
		if err == nil {
			t.Errorf("%s: no error", name)
		}
		if _, err := os.Lstat(filepath.Join(parent, "evil")); err == nil {
			t.Errorf("%s: wrote outside the directory", name)
		}
	}
}
