// Package blob stores artifacts (dataset files, model bundles, reports) in S3-compatible storage
// (MinIO, S3, or devstack's embedded server) through minio-go.
//
// Every object carries the sha256 of its bytes, computed while it is streamed in and kept as
// user metadata; every Get verifies the bytes against it. PutContent stores an object under its
// digest, so equal content is stored once and a key names its content.
//
// Uploads go to a temporary key under TempPrefix first and are copied to their key, server side,
// with their digest: a key never holds an object without one. Temporary keys that a crash leaves
// behind are garbage; a bucket lifecycle rule on TempPrefix may expire them.
package blob

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"path"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

var (
	// ErrNotFound means there is no object under the key.
	ErrNotFound = errors.New("blob not found")
	// ErrDigestMismatch means an object's bytes do not have the sha256 they should.
	ErrDigestMismatch = errors.New("blob sha256 mismatch")
)

const (
	// TempPrefix is where uploads are streamed before being copied to their key.
	TempPrefix = "tmp/"

	// sha256Meta is the user metadata key of the hex sha256 (header X-Amz-Meta-Sha256).
	sha256Meta = "Sha256"

	// partSize bounds memory per upload of unknown size: minio-go buffers one part, and
	// would choose about 512 MiB by itself.
	partSize = 16 << 20

	cleanupTimeout = 30 * time.Second
)

// maxSingleCopySize is the largest object S3 copies in one CopyObject; larger ones are copied in parts.
var maxSingleCopySize int64 = 5 << 30

// Config says where the store is.
type Config struct {
	// Endpoint is host:port, without a scheme.
	Endpoint             string
	AccessKey, SecretKey string
	Bucket               string
	// Region is the bucket's region; empty lets minio-go ask the server.
	Region string
	// Secure selects HTTPS.
	Secure bool
}

// Store reads and writes the objects of one bucket. It is safe for concurrent use.
type Store struct {
	client *minio.Client
	bucket string
	region string
}

// Object describes a stored object.
type Object struct {
	Key string
	// SHA256 is the hex sha256 of the object's bytes.
	SHA256 string
	Size   int64
}

// Open connects to the store and creates the bucket if it does not exist.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Endpoint == "" || cfg.Bucket == "" {
		return nil, fmt.Errorf("open blob store: endpoint %q and bucket %q are both required", cfg.Endpoint, cfg.Bucket)
	}
	client, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:  credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure: cfg.Secure,
		Region: cfg.Region,
	})
	if err != nil {
		return nil, fmt.Errorf("open blob store %s: %w", cfg.Endpoint, err)
	}
	s := &Store{client: client, bucket: cfg.Bucket, region: cfg.Region}
	if err := s.ensureBucket(ctx); err != nil {
		return nil, fmt.Errorf("open blob store %s: %w", cfg.Endpoint, err)
	}
	return s, nil
}

func (s *Store) ensureBucket(ctx context.Context) error {
	exists, err := s.client.BucketExists(ctx, s.bucket)
	if err != nil {
		return fmt.Errorf("check bucket %s: %w", s.bucket, err)
	}
	if exists {
		return nil
	}
	makeErr := s.client.MakeBucket(ctx, s.bucket, minio.MakeBucketOptions{Region: s.region})
	if makeErr == nil {
		return nil
	}
	// Another process may have created it since BucketExists; whatever the error code says, it is there.
	if exists, err := s.client.BucketExists(ctx, s.bucket); err == nil && exists {
		return nil
	}
	return fmt.Errorf("create bucket %s: %w", s.bucket, makeErr)
}

// Ping checks that the bucket is reachable.
func (s *Store) Ping(ctx context.Context) error {
	exists, err := s.client.BucketExists(ctx, s.bucket)
	if err != nil {
		return fmt.Errorf("ping blob store: %w", err)
	}
	if !exists {
		return fmt.Errorf("ping blob store: bucket %s does not exist", s.bucket)
	}
	return nil
}

// Put streams r to key, size bytes of it, or all of it when size is -1, and returns the
// object with the sha256 of what was stored. The bytes are never all held in memory.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) (Object, error) {
	if key == "" {
		return Object{}, errors.New("put blob: empty key")
	}
	tmp, err := s.upload(ctx, r, size, contentType)
	if err != nil {
		return Object{}, fmt.Errorf("put blob %s: %w", key, err)
	}
	defer s.removeTemp(ctx, tmp.Key)
	if err := s.copyWithDigest(ctx, tmp, key, contentType); err != nil {
		return Object{}, fmt.Errorf("put blob %s: %w", key, err)
	}
	return Object{Key: key, SHA256: tmp.SHA256, Size: tmp.Size}, nil
}

// PutContent stores all of r under ContentKey(prefix, its sha256). Storing the same bytes
// again changes nothing and returns the same object.
func (s *Store) PutContent(ctx context.Context, prefix string, r io.Reader, contentType string) (Object, error) {
	tmp, err := s.upload(ctx, r, -1, contentType)
	if err != nil {
		return Object{}, fmt.Errorf("put content under %s: %w", prefix, err)
	}
	defer s.removeTemp(ctx, tmp.Key)

	key := ContentKey(prefix, tmp.SHA256)
	obj := Object{Key: key, SHA256: tmp.SHA256, Size: tmp.Size}
	existing, err := s.Stat(ctx, key)
	switch {
	case err == nil && existing == obj:
		return obj, nil
	case err != nil && !errors.Is(err, ErrNotFound):
		return Object{}, fmt.Errorf("put content: %w", err)
	}
	// Missing, or present with the wrong digest or size: (re)write it.
	if err := s.copyWithDigest(ctx, tmp, key, contentType); err != nil {
		return Object{}, fmt.Errorf("put content %s: %w", key, err)
	}
	return obj, nil
}

// ContentKey is the key of content with the given hex sha256 under prefix: prefix/sha256/<hex>.
func ContentKey(prefix, sha256Hex string) string {
	return path.Join(prefix, "sha256", sha256Hex)
}

// upload streams r to a new temporary key, hashing it on the way.
func (s *Store) upload(ctx context.Context, r io.Reader, size int64, contentType string) (Object, error) {
	key := TempPrefix + strings.ToLower(rand.Text())
	hashed := &hashingReader{r: r, hash: sha256.New()}
	info, err := s.client.PutObject(ctx, s.bucket, key, hashed, size, minio.PutObjectOptions{
		ContentType: contentType,
		PartSize:    partSize,
	})
	if err != nil {
		// minio-go has aborted a multipart upload; a single PUT may have landed all the same.
		s.removeTemp(ctx, key)
		return Object{}, fmt.Errorf("upload: %w", err)
	}
	if info.Size != hashed.n {
		s.removeTemp(ctx, key)
		return Object{}, fmt.Errorf("upload: stored %d bytes, read %d", info.Size, hashed.n)
	}
	return Object{Key: key, SHA256: hex.EncodeToString(hashed.hash.Sum(nil)), Size: hashed.n}, nil
}

// copyWithDigest copies the temporary object tmp to key, server side, with its digest as metadata.
func (s *Store) copyWithDigest(ctx context.Context, tmp Object, key, contentType string) error {
	dst := minio.CopyDestOptions{
		Bucket:          s.bucket,
		Object:          key,
		UserMetadata:    map[string]string{sha256Meta: tmp.SHA256},
		ReplaceMetadata: true,
		ContentType:     contentType,
	}
	src := minio.CopySrcOptions{Bucket: s.bucket, Object: tmp.Key}
	var err error
	if tmp.Size <= maxSingleCopySize {
		_, err = s.client.CopyObject(ctx, dst, src)
	} else {
		// A multipart copy: several requests, each copying a range.
		_, err = s.client.ComposeObject(ctx, dst, src)
	}
	if err != nil {
		return fmt.Errorf("copy from %s: %w", tmp.Key, err)
	}
	return nil
}

// removeTemp deletes a temporary object, even when ctx is done; a failure only leaves
// garbage under TempPrefix.
func (s *Store) removeTemp(ctx context.Context, key string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	if err := s.client.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{}); err != nil {
		slog.WarnContext(ctx, "remove temporary blob failed", "bucket", s.bucket, "key", key, "err", err)
	}
}

// Stat describes the object under key, or returns ErrNotFound. SHA256 is empty for an object
// that was not written by this package.
func (s *Store) Stat(ctx context.Context, key string) (Object, error) {
	info, err := s.client.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return Object{}, fmt.Errorf("stat blob %s: %w", key, notFound(err))
	}
	return Object{Key: key, SHA256: info.UserMetadata[sha256Meta], Size: info.Size}, nil
}

// Get opens the object under key for reading. Its bytes are checked against wantSHA256, or
// against the digest stored with the object when wantSHA256 is empty: at the end, the reader
// returns an error wrapping ErrDigestMismatch instead of io.EOF if they differ. A reader that
// is closed before the end checks nothing.
func (s *Store) Get(ctx context.Context, key, wantSHA256 string) (io.ReadCloser, error) {
	want := strings.ToLower(wantSHA256)
	if want != "" && !isSHA256Hex(want) {
		return nil, fmt.Errorf("get blob %s: %q is not a hex sha256", key, wantSHA256)
	}
	obj, err := s.client.GetObject(ctx, s.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, fmt.Errorf("get blob %s: %w", key, notFound(err))
	}
	// Stat sends the GET, so the digest below comes with the bytes that are read.
	info, err := obj.Stat()
	if err != nil {
		obj.Close()
		return nil, fmt.Errorf("get blob %s: %w", key, notFound(err))
	}
	want = cmp.Or(want, info.UserMetadata[sha256Meta])
	if !isSHA256Hex(want) {
		obj.Close()
		return nil, fmt.Errorf("get blob %s: no sha256 given and none stored with it", key)
	}
	return &verifyingReader{obj: obj, key: key, want: want, hash: sha256.New()}, nil
}

func notFound(err error) error {
	if minio.ToErrorResponse(err).Code == minio.NoSuchKey {
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return err
}

func isSHA256Hex(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// hashingReader hashes and counts what is read through it. It hides any Seek or ReadAt
// of the reader it wraps, so that minio-go reads every byte once, in order.
type hashingReader struct {
	r    io.Reader
	hash hash.Hash
	n    int64
}

func (h *hashingReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.hash.Write(p[:n])
	h.n += int64(n)
	return n, err
}

type verifyingReader struct {
	obj  *minio.Object
	key  string
	want string
	hash hash.Hash
	err  error // sticky once the end is reached
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	n, err := v.obj.Read(p)
	v.hash.Write(p[:n])
	if errors.Is(err, io.EOF) {
		if got := hex.EncodeToString(v.hash.Sum(nil)); got != v.want {
			err = fmt.Errorf("blob %s: %w: want sha256 %s, got %s", v.key, ErrDigestMismatch, v.want, got)
		}
		v.err = err
	} else if err != nil {
		err = fmt.Errorf("read blob %s: %w", v.key, notFound(err))
	}
	return n, err
}

func (v *verifyingReader) Close() error {
	return v.obj.Close()
}

// URI names an object of this store as s3://bucket/key.
func (s *Store) URI(key string) string { return "s3://" + s.bucket + "/" + key }

// KeyOf is the key of an s3:// URI in this store's bucket; ok is false for
// any other URI.
func (s *Store) KeyOf(uri string) (key string, ok bool) {
	key, ok = strings.CutPrefix(uri, "s3://"+s.bucket+"/")
	return key, ok && key != ""
}

// Open reads an object that came from outside Gyre, so has no digest to
// verify (e.g. a dataset file registered by its URI); the caller hashes it.
func (s *Store) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	obj, err := s.client.GetObject(ctx, s.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, fmt.Errorf("open blob %s: %w", key, notFound(err))
	}
	if _, err := obj.Stat(); err != nil {
		obj.Close()
		return nil, fmt.Errorf("open blob %s: %w", key, notFound(err))
	}
	return obj, nil
}

// List returns the keys under prefix, in key order.
func (s *Store) List(ctx context.Context, prefix string) ([]string, error) {
	var keys []string
	for obj := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if obj.Err != nil {
			return nil, fmt.Errorf("list blobs %s: %w", prefix, obj.Err)
		}
		keys = append(keys, obj.Key)
	}
	return keys, nil
}
