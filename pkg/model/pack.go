package model

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Limits of Unpack, against archives built to fill a disk.
const (
	MaxBundleFileBytes  = 8 << 30
	MaxBundleTotalBytes = 32 << 30
	MaxBundleEntries    = 10_000
)

// Pack writes the bundle in dir as a gzip-compressed tar stream: the
// manifest first, then the files it lists in name order, each checked
// against its sha256 on the way. The same bundle always gives the same
// bytes (no timestamps, owners or modes beyond 0644).
func Pack(dir string, w io.Writer) error {
	m, err := ReadManifest(dir)
	if err != nil {
		return fmt.Errorf("pack bundle: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("pack bundle: %w", err)
	}
	defer root.Close()
	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	names := append([]string{ManifestFile}, slices.Sorted(maps.Keys(m.Files))...)
	for _, name := range names {
		if err := packFile(tw, root, name, m.Files[name]); err != nil {
			return fmt.Errorf("pack bundle %s: file %s: %w", dir, name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("pack bundle %s: %w", dir, err)
	}
	if err := gz.Close(); err != nil {
		return fmt.Errorf("pack bundle %s: %w", dir, err)
	}
	return nil
}

func packFile(tw *tar.Writer, root *os.Root, name, sum string) error {
	f, err := openRegular(root, name)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: fi.Size(), Mode: 0o644, ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if sum == "" { // the manifest
		_, err = io.Copy(tw, f)
		return err
	}
	return copyVerified(tw, f, sum)
}

// Unpack extracts a stream written by Pack into dir (created if needed). It
// accepts only regular files and directories with relative paths that stay
// inside dir, each file at most MaxBundleFileBytes, and refuses absolute
// paths, .. elements, links, devices, a file given twice, and archives over
// MaxBundleEntries entries or MaxBundleTotalBytes. It does not verify the
// bundle: Load (or VerifyBundle) does.
func Unpack(r io.Reader, dir string) error {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return fmt.Errorf("unpack bundle: %w", err)
	}
	defer gz.Close()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("unpack bundle: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("unpack bundle: %w", err)
	}
	defer root.Close()
	tr := tar.NewReader(gz)
	var entries int
	var total int64
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("unpack bundle: %w", err)
		}
		if entries++; entries > MaxBundleEntries {
			return fmt.Errorf("unpack bundle: more than %d entries", MaxBundleEntries)
		}
		name := strings.TrimSuffix(hdr.Name, "/")
		if !fs.ValidPath(name) || name == "." || strings.Contains(name, `\`) {
			return fmt.Errorf("unpack bundle: entry %q: want a relative path inside the bundle, without . or .. elements", hdr.Name)
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := root.MkdirAll(filepath.FromSlash(name), 0o755); err != nil {
				return fmt.Errorf("unpack bundle: entry %q: %w", hdr.Name, err)
			}
			continue
		case tar.TypeReg:
		default:
			return fmt.Errorf("unpack bundle: entry %q: only regular files and directories are allowed, not type %q", hdr.Name, hdr.Typeflag)
		}
		if hdr.Size > MaxBundleFileBytes {
			return fmt.Errorf("unpack bundle: entry %q: %d bytes, over the limit of %d", hdr.Name, hdr.Size, int64(MaxBundleFileBytes))
		}
		if total += hdr.Size; total > MaxBundleTotalBytes {
			return fmt.Errorf("unpack bundle: over the limit of %d bytes in all", int64(MaxBundleTotalBytes))
		}
		if err := unpackFile(root, name, tr, hdr.Size); err != nil {
			return fmt.Errorf("unpack bundle: entry %q: %w", hdr.Name, err)
		}
	}
}

func unpackFile(root *os.Root, name string, r io.Reader, size int64) error {
	if d := filepath.Dir(filepath.FromSlash(name)); d != "." {
		if err := root.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	// O_EXCL: an entry given twice, or a name that is already there (a
	// link planted by an earlier entry included), is refused.
	f, err := root.OpenFile(filepath.FromSlash(name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.CopyN(f, r, size); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// copyVerified copies r to w and fails when what was copied does not have
// the sha256 want.
func copyVerified(w io.Writer, r io.Reader, want string) error {
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(w, h), r); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("sha256 is %s, the manifest says %s: the file was changed or damaged", got, want)
	}
	return nil
}
