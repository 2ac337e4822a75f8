package blob

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/gyreml/gyre/pkg/devstack"
)

const testBucket = "gyre-artifacts"

// These tests run against devstack's in-process S3 server, which speaks the same protocol as MinIO.
type testEnv struct {
	s3    *devstack.S3
	dir   string // the server's directory
	store *Store
}

func newTestEnv(t *testing.T) testEnv {
	t.Helper()
	dir := t.TempDir()
	s3, err := devstack.StartS3(devstack.S3Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s3.Stop(context.Background()) })
	store, err := Open(context.Background(), testConfig(s3))
	if err != nil {
		t.Fatal(err)
	}
	return testEnv{s3: s3, dir: dir, store: store}
}

func testConfig(s3 *devstack.S3) Config {
	return Config{Endpoint: s3.Endpoint, AccessKey: s3.AccessKey, SecretKey: s3.SecretKey, Bucket: testBucket}
}

// storedFile is where the server keeps the bytes of key.
func (e testEnv) storedFile(key string) string {
	return filepath.Join(e.dir, "buckets", testBucket, filepath.FromSlash(key))
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func readAll(t *testing.T, s *Store, key, want string) ([]byte, error) {
	t.Helper()
	r, err := s.Get(context.Background(), key, want)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer r.Close()
	return io.ReadAll(r)
}

// onlyReader hides everything but Read, as a network stream would.
type onlyReader struct{ io.Reader }

// generated is a reader of n pseudo-random bytes, the same for the same seed, never in memory whole.
func generated(seed byte, n int64) io.Reader {
	return io.LimitReader(rand.NewChaCha8([32]byte{seed}), n)
}

func TestStoreRoundTrip(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	data := []byte(`{"auc": 0.91}`)

	obj, err := env.store.Put(ctx, "reports/eval.json", bytes.NewReader(data), int64(len(data)), "application/json")
	if err != nil {
		t.Fatal(err)
	}
	want := Object{Key: "reports/eval.json", SHA256: sha256Hex(data), Size: int64(len(data))}
	if obj != want {
		t.Errorf("put returned %+v, want %+v", obj, want)
	}
	if stat, err := env.store.Stat(ctx, "reports/eval.json"); err != nil || stat != want {
		t.Errorf("stat = %+v, %v; want %+v", stat, err, want)
	}
	for _, digest := range []string{"", want.SHA256, strings.ToUpper(want.SHA256)} {
		got, err := readAll(t, env.store, "reports/eval.json", digest)
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("get with digest %q = %q, %v; want %q", digest, got, err, data)
		}
	}
	if err := env.store.Ping(ctx); err != nil {
		t.Errorf("ping: %v", err)
	}
	assertNoTemporaryObjects(t, env.store)
}

func TestStoreOpenConcurrentlyCreatesBucketOnce(t *testing.T) {
	env := newTestEnv(t)
	cfg := testConfig(env.s3)
	cfg.Bucket = "fresh"

	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = Open(context.Background(), cfg)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent opens of a new bucket: %v", err)
	}
}

func TestStoreStatAndGetMissing(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	if _, err := env.store.Stat(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("stat of a missing key: %v, want ErrNotFound", err)
	}
	if _, err := env.store.Get(ctx, "nope", ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("get of a missing key: %v, want ErrNotFound", err)
	}
}

func TestStorePutContentIsIdempotent(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	data := []byte("model weights")

	first, err := env.store.PutContent(ctx, "models", bytes.NewReader(data), "application/octet-stream")
	if err != nil {
		t.Fatal(err)
	}
	if want := "models/sha256/" + sha256Hex(data); first.Key != want || first.Key != ContentKey("models", first.SHA256) {
		t.Errorf("key %s, want %s", first.Key, want)
	}
	file := env.storedFile(first.Key)
	before, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}

	again, err := env.store.PutContent(ctx, "models", bytes.NewReader(data), "application/octet-stream")
	if err != nil {
		t.Fatal(err)
	}
	if again != first {
		t.Errorf("same bytes stored again as %+v, first as %+v", again, first)
	}
	if after, err := os.Stat(file); err != nil || !after.ModTime().Equal(before.ModTime()) {
		t.Errorf("storing the same bytes again rewrote the object (%v)", err)
	}

	other, err := env.store.PutContent(ctx, "models", strings.NewReader("other weights"), "application/octet-stream")
	if err != nil {
		t.Fatal(err)
	}
	if other.Key == first.Key {
		t.Errorf("different bytes stored under the same key %s", other.Key)
	}
	if got, err := readAll(t, env.store, first.Key, first.SHA256); err != nil || !bytes.Equal(got, data) {
		t.Errorf("get %s = %q, %v", first.Key, got, err)
	}
	assertNoTemporaryObjects(t, env.store)
}

func TestStoreGetDetectsTampering(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	original := []byte("the bytes that were trained on")
	obj, err := env.store.PutContent(ctx, "datasets", bytes.NewReader(original), "text/csv")
	if err != nil {
		t.Fatal(err)
	}

	t.Run("file changed on disk", func(t *testing.T) {
		tampered := bytes.ToUpper(original)
		if err := os.WriteFile(env.storedFile(obj.Key), tampered, 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := readAll(t, env.store, obj.Key, "")
		if !errors.Is(err, ErrDigestMismatch) {
			t.Fatalf("read of a tampered object: %q, %v; want ErrDigestMismatch", got, err)
		}
		for _, part := range []string{obj.Key, obj.SHA256, sha256Hex(tampered)} {
			if !strings.Contains(err.Error(), part) {
				t.Errorf("error %q does not name %s", err, part)
			}
		}
	})

	t.Run("other bytes put under the key", func(t *testing.T) {
		if _, err := env.store.Put(ctx, "models/current", strings.NewReader("replaced"), -1, ""); err != nil {
			t.Fatal(err)
		}
		_, err := readAll(t, env.store, "models/current", obj.SHA256)
		if !errors.Is(err, ErrDigestMismatch) {
			t.Fatalf("read against the digest of other bytes: %v, want ErrDigestMismatch", err)
		}
	})

	t.Run("stored digest rewritten", func(t *testing.T) {
		// An object whose metadata disagrees with its bytes, as a foreign writer could leave it.
		_, err := env.store.client.PutObject(ctx, testBucket, "foreign", strings.NewReader("abc"), 3,
			minio.PutObjectOptions{UserMetadata: map[string]string{sha256Meta: obj.SHA256}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := readAll(t, env.store, "foreign", ""); !errors.Is(err, ErrDigestMismatch) {
			t.Fatalf("read against a wrong stored digest: %v, want ErrDigestMismatch", err)
		}
	})

	t.Run("still caught after PutContent of the same bytes", func(t *testing.T) {
		// PutContent trusts an existing object with the right digest and size, so a
		// same-size rewrite on disk stays: Get is what catches it.
		again, err := env.store.PutContent(ctx, "datasets", bytes.NewReader(original), "text/csv")
		if err != nil || again != obj {
			t.Fatalf("put content again: %+v, %v", again, err)
		}
		_, err = readAll(t, env.store, obj.Key, "")
		if !errors.Is(err, ErrDigestMismatch) {
			t.Fatalf("read of a tampered object after PutContent: %v, want ErrDigestMismatch", err)
		}
	})
}

func TestStoreGetWithoutDigest(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	if _, err := env.store.client.PutObject(ctx, testBucket, "foreign", strings.NewReader("abc"), 3, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.store.Get(ctx, "foreign", ""); err == nil || errors.Is(err, ErrNotFound) {
		t.Errorf("get of an object without a stored digest and none given: %v, want a refusal", err)
	}
	if _, err := env.store.Get(ctx, "foreign", "not-a-digest"); err == nil {
		t.Error("get with a malformed digest succeeded")
	}
	got, err := readAll(t, env.store, "foreign", sha256Hex([]byte("abc")))
	if err != nil || string(got) != "abc" {
		t.Errorf("get with the right digest given = %q, %v", got, err)
	}
}

func TestStorePutUnknownSize(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	for _, size := range []int64{0, 1000, partSize, partSize + 1, 2*partSize + 12345} {
		want := sha256Of(t, generated(1, size))
		obj, err := env.store.Put(ctx, "stream", onlyReader{generated(1, size)}, -1, "")
		if err != nil {
			t.Fatalf("put %d bytes of unknown size: %v", size, err)
		}
		if obj.Size != size || obj.SHA256 != want {
			t.Errorf("put %d bytes: got %+v, want sha256 %s", size, obj, want)
		}
		r, err := env.store.Get(ctx, "stream", "")
		if err != nil {
			t.Fatal(err)
		}
		if got := sha256Of(t, r); got != want {
			t.Errorf("read back %d bytes: sha256 %s, want %s", size, got, want)
		}
		r.Close()
	}
}

func TestStorePutCopiesInPartsBeyondSingleCopyLimit(t *testing.T) {
	env := newTestEnv(t)
	defer func(limit int64) { maxSingleCopySize = limit }(maxSingleCopySize)
	maxSingleCopySize = 1000

	data := bytes.Repeat([]byte("0123456789"), 1000)
	obj, err := env.store.Put(context.Background(), "copied", bytes.NewReader(data), int64(len(data)), "")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := readAll(t, env.store, obj.Key, ""); err != nil || !bytes.Equal(got, data) {
		t.Errorf("get after a multipart copy: %d bytes, %v", len(got), err)
	}
	assertNoTemporaryObjects(t, env.store)
}

// failingReader returns err after n bytes.
type failingReader struct {
	r   io.Reader
	err error
}

func (f failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if errors.Is(err, io.EOF) {
		err = f.err
	}
	return n, err
}

func TestStoreFailedPutLeavesNothing(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	broken := errors.New("network gone")
	for _, tc := range []struct {
		name string
		r    io.Reader
		size int64
	}{
		{"shorter than declared", strings.NewReader("abc"), 10},
		{"reader fails in a later part", failingReader{generated(2, partSize+1000), broken}, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := env.store.Put(ctx, "failed", tc.r, tc.size, ""); err == nil {
				t.Fatal("put succeeded")
			}
			if _, err := env.store.Stat(ctx, "failed"); !errors.Is(err, ErrNotFound) {
				t.Errorf("a failed put left an object behind: %v", err)
			}
			assertNoTemporaryObjects(t, env.store)
			for upload := range env.store.client.ListIncompleteUploads(ctx, testBucket, TempPrefix, true) {
				t.Errorf("multipart upload left behind: %+v", upload)
			}
		})
	}
}

func TestStorePutLargeStream(t *testing.T) {
	if testing.Short() {
		t.Skip("uploads 100 MiB")
	}
	env := newTestEnv(t)
	ctx := context.Background()
	const size = 100 << 20
	want := sha256Of(t, generated(7, size))

	obj, err := env.store.PutContent(ctx, "bundles", onlyReader{generated(7, size)}, "application/octet-stream")
	if err != nil {
		t.Fatal(err)
	}
	if obj.Size != size || obj.SHA256 != want {
		t.Fatalf("put returned %+v, want %d bytes with sha256 %s", obj, size, want)
	}
	f, err := os.Open(env.storedFile(obj.Key))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got := sha256Of(t, f); got != want {
		t.Errorf("stored file sha256 %s, want %s", got, want)
	}
	r, err := env.store.Get(ctx, obj.Key, "")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got := sha256Of(t, r); got != want {
		t.Errorf("read back sha256 %s, want %s", got, want)
	}
	assertNoTemporaryObjects(t, env.store)
}

func sha256Of(t *testing.T, r io.Reader) string {
	t.Helper()
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		t.Fatalf("read: %v", err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func assertNoTemporaryObjects(t *testing.T, s *Store) {
	t.Helper()
	for obj := range s.client.ListObjects(context.Background(), testBucket, minio.ListObjectsOptions{Prefix: TempPrefix, Recursive: true}) {
		if obj.Err != nil {
			t.Fatalf("list %s: %v", TempPrefix, obj.Err)
		}
		t.Errorf("temporary object %s left behind", obj.Key)
	}
}
