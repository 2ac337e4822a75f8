package devstack

import (
	"bufio"
	"cmp"
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3afero"
)

// S3Options configures StartS3.
type S3Options struct {
	// Dir holds the buckets (Dir/buckets), their metadata (Dir/metadata) and uploads in progress (Dir/tmp).
	Dir string
	// Addr is the listen address, 127.0.0.1:0 (a free port) when empty.
	Addr string
	// AccessKey and SecretKey default to "gyre" and "gyre-dev-secret".
	AccessKey, SecretKey string
	Logger               *slog.Logger
}

// S3 is an S3-compatible HTTP server inside this process, storing objects as files under a
// directory, so that `gyre dev` and tests use the same minio-go code as production against MinIO.
//
// It is gofakes3 over its filesystem backend, repaired around rather than forked where minio-go
// needs it or it loses data:
//   - aws-chunked bodies (minio-go's streaming signatures, on every upload over plain HTTP) are
//     decoded before gofakes3 sees them; it would store multipart parts with their chunk headers;
//   - multipart parts are kept in files, not in memory, and empty parts and UploadPartCopy work;
//   - a body is received whole into a temporary file before the stored object is replaced, so a
//     broken upload leaves the previous object intact, and copying an object onto itself keeps it.
//
// Requests must carry the access key; their signatures are not verified.
type S3 struct {
	// Endpoint is host:port, for minio-go's endpoint (no scheme; plain HTTP).
	Endpoint             string
	AccessKey, SecretKey string

	srv    *http.Server
	ln     net.Listener
	served chan struct{} // closed when Serve has returned
}

// StartS3 starts the server and returns once it accepts connections. Objects written before
// a restart on the same Dir are still there; uploads that were in progress are dropped.
func StartS3(opts S3Options) (*S3, error) {
	if opts.Dir == "" {
		return nil, errors.New("start s3: no directory")
	}
	accessKey := cmp.Or(opts.AccessKey, "gyre")
	secretKey := cmp.Or(opts.SecretKey, "gyre-dev-secret")
	logger := cmp.Or(opts.Logger, slog.Default()).With("component", "s3")

	tmpDir := filepath.Join(opts.Dir, "tmp")
	if err := os.RemoveAll(tmpDir); err != nil {
		return nil, fmt.Errorf("start s3: clear uploads in progress: %w", err)
	}
	if err := os.MkdirAll(tmpDir, 0o700); err != nil {
		return nil, fmt.Errorf("start s3: %w", err)
	}
	root, err := s3afero.FsPath(opts.Dir, s3afero.FsPathCreateAll)
	if err != nil {
		return nil, fmt.Errorf("start s3 in %s: %w", opts.Dir, err)
	}
	buckets, err := s3afero.MultiBucket(root)
	if err != nil {
		return nil, fmt.Errorf("start s3 in %s: %w", opts.Dir, err)
	}
	backend := &fsBackend{
		MultiBucketBackend: buckets,
		tmpDir:             tmpDir,
		log:                logger,
		uploads:            make(map[gofakes3.UploadID]*multipartUpload),
	}
	faker := gofakes3.New(backend, gofakes3.WithLogger(s3Logger{logger}))

	ln, err := net.Listen("tcp", cmp.Or(opts.Addr, "127.0.0.1:0"))
	if err != nil {
		return nil, fmt.Errorf("start s3: %w", err)
	}
	s := &S3{
		Endpoint:  ln.Addr().String(),
		AccessKey: accessKey,
		SecretKey: secretKey,
		srv: &http.Server{
			Handler:           s3Handler(faker.Server(), backend, accessKey),
			ReadHeaderTimeout: time.Minute,
			ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		},
		ln:     ln,
		served: make(chan struct{}),
	}
	go func() {
		defer close(s.served)
		if err := s.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			logger.Error("s3 server stopped", "endpoint", s.Endpoint, "err", err)
		}
	}()
	return s, nil
}

// Stop stops accepting requests and waits for those in flight, until ctx ends.
func (s *S3) Stop(ctx context.Context) error {
	if err := s.srv.Shutdown(ctx); err != nil {
		return fmt.Errorf("stop s3 %s: %w", s.Endpoint, err)
	}
	// Shutdown closes only the listeners that Serve has begun to use, and Serve may not have begun.
	_ = s.ln.Close()
	<-s.served
	return nil
}

// s3Handler checks the access key, decodes aws-chunked bodies and serves the part uploads that
// gofakes3 gets wrong.
func s3Handler(next http.Handler, backend *fsBackend, accessKey string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// CORS preflights never carry credentials.
		if r.Method != http.MethodOptions && requestAccessKey(r) != accessKey {
			writeS3Error(w, r, http.StatusForbidden, "InvalidAccessKeyId",
				"The AWS Access Key Id you provided does not exist in our records.")
			return
		}
		if strings.HasPrefix(r.Header.Get("X-Amz-Content-Sha256"), "STREAMING-") {
			decoded, err := decodeAWSChunked(r)
			if err != nil {
				writeS3Error(w, r, http.StatusLengthRequired, string(gofakes3.ErrMissingContentLength), err.Error())
				return
			}
			r = decoded
		}
		q := r.URL.Query()
		if r.Method == http.MethodPut && q.Has("uploadId") && q.Has("partNumber") {
			switch {
			// gofakes3 has no UploadPartCopy, which minio-go's ComposeObject uses.
			case r.Header.Get("X-Amz-Copy-Source") != "":
				backend.serveUploadPartCopy(w, r)
				return
			// gofakes3 refuses an empty part, which S3 takes as the only part of an empty
			// object: minio-go sends one for an empty stream of unknown size.
			case r.ContentLength == 0:
				backend.serveUploadPart(w, r, 0, http.NoBody)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// serveUploadPart stores part under the upload and part number that the request names.
func (b *fsBackend) serveUploadPart(w http.ResponseWriter, r *http.Request, size int64, part io.Reader) (etag string, ok bool) {
	bucket, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	q := r.URL.Query()
	partNumber, err := strconv.Atoi(q.Get("partNumber"))
	if err != nil || partNumber < 1 || partNumber > gofakes3.MaxUploadPartNumber {
		writeS3Error(w, r, http.StatusBadRequest, string(gofakes3.ErrInvalidPart), "bad part number")
		return "", false
	}
	etag, err = b.UploadPart(bucket, key, gofakes3.UploadID(q.Get("uploadId")), partNumber, size, part)
	if err != nil {
		b.writeError(w, r, err)
		return "", false
	}
	w.Header().Set("ETag", etag)
	return etag, true
}

func (b *fsBackend) serveUploadPartCopy(w http.ResponseWriter, r *http.Request) {
	source, err := url.PathUnescape(r.Header.Get("X-Amz-Copy-Source"))
	if err != nil {
		writeS3Error(w, r, http.StatusBadRequest, string(gofakes3.ErrInvalidArgument), "bad x-amz-copy-source")
		return
	}
	source, _, _ = strings.Cut(source, "?") // a versionId; there are no versions here
	srcBucket, srcKey, _ := strings.Cut(strings.TrimPrefix(source, "/"), "/")

	var rng *gofakes3.ObjectRangeRequest
	if h := r.Header.Get("X-Amz-Copy-Source-Range"); h != "" {
		first, last, ok := strings.Cut(strings.TrimPrefix(h, "bytes="), "-")
		start, err1 := strconv.ParseInt(first, 10, 64)
		end, err2 := strconv.ParseInt(last, 10, 64)
		if !ok || err1 != nil || err2 != nil || start < 0 || end < start {
			writeS3Error(w, r, http.StatusBadRequest, string(gofakes3.ErrInvalidArgument), "bad x-amz-copy-source-range "+h)
			return
		}
		rng = &gofakes3.ObjectRangeRequest{Start: start, End: end}
	}
	src, err := b.GetObject(srcBucket, srcKey, rng)
	if err != nil {
		b.writeError(w, r, err)
		return
	}
	defer src.Contents.Close()
	size := src.Size
	if src.Range != nil {
		size = src.Range.Length
	}
	etag, ok := b.serveUploadPart(w, r, size, src.Contents)
	if !ok {
		return
	}
	body, err := xml.Marshal(copyPartResult{ETag: etag, LastModified: gofakes3.NewContentTime(time.Now())})
	if err != nil {
		b.writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/xml")
	_, _ = w.Write(append([]byte(xml.Header), body...))
}

type copyPartResult struct {
	XMLName      xml.Name `xml:"CopyPartResult"`
	ETag         string
	LastModified gofakes3.ContentTime
}

func (b *fsBackend) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var s3err gofakes3.Error
	if errors.As(err, &s3err) {
		writeS3Error(w, r, s3err.ErrorCode().Status(), string(s3err.ErrorCode()), err.Error())
		return
	}
	b.log.Error("s3 request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	writeS3Error(w, r, http.StatusInternalServerError, string(gofakes3.ErrInternal), err.Error())
}

// requestAccessKey returns the access key of a SigV4 or SigV2 request, signed in its
// Authorization header or presigned in its query, or "" for an anonymous one.
func requestAccessKey(r *http.Request) string {
	auth := r.Header.Get("Authorization")
	if _, cred, ok := strings.Cut(auth, "Credential="); ok {
		key, _, _ := strings.Cut(cred, "/")
		return key
	}
	if v2, ok := strings.CutPrefix(auth, "AWS "); ok {
		key, _, _ := strings.Cut(v2, ":")
		return key
	}
	q := r.URL.Query()
	if cred := q.Get("X-Amz-Credential"); cred != "" {
		key, _, _ := strings.Cut(cred, "/")
		return key
	}
	return q.Get("AWSAccessKeyId")
}

func writeS3Error(w http.ResponseWriter, r *http.Request, status int, code, message string) {
	body, err := xml.Marshal(&gofakes3.ErrorResponse{Code: gofakes3.ErrorCode(code), Message: message})
	if err != nil {
		http.Error(w, message, status)
		return
	}
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(append([]byte(xml.Header), body...))
	}
}

// decodeAWSChunked returns an aws-chunked request (STREAMING-AWS4-HMAC-SHA256-PAYLOAD and its
// -TRAILER and UNSIGNED variants) as a plain one with the decoded body: gofakes3 decodes only
// some of these, and for part uploads none, storing chunk signatures as data.
func decodeAWSChunked(orig *http.Request) (*http.Request, error) {
	size, err := strconv.ParseInt(orig.Header.Get("X-Amz-Decoded-Content-Length"), 10, 64)
	if err != nil || size < 0 {
		return nil, fmt.Errorf("aws-chunked request without a valid x-amz-decoded-content-length: %q",
			orig.Header.Get("X-Amz-Decoded-Content-Length"))
	}
	// A copy: net/http goes on using the original to finish reading the body.
	r := orig.Clone(orig.Context())
	r.Body = &awsChunkedReader{chunks: bufio.NewReader(r.Body), body: r.Body, want: size}
	r.ContentLength = size
	r.Header.Set("Content-Length", strconv.FormatInt(size, 10))
	r.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
	r.Header.Del("X-Amz-Decoded-Content-Length")
	r.Header.Del("X-Amz-Trailer")

	var encodings []string
	for _, enc := range strings.Split(r.Header.Get("Content-Encoding"), ",") {
		if enc = strings.TrimSpace(enc); enc != "" && !strings.EqualFold(enc, "aws-chunked") {
			encodings = append(encodings, enc)
		}
	}
	if len(encodings) == 0 {
		r.Header.Del("Content-Encoding")
	} else {
		r.Header.Set("Content-Encoding", strings.Join(encodings, ","))
	}
	return r, nil
}

// awsChunkTrailerLimit bounds what may follow the last chunk (checksum trailers and their signature).
const awsChunkTrailerLimit = 16 << 10

// awsChunkedReader reads the data of an aws-chunked body: chunks of
// "<hex size>[;chunk-signature=<sig>]\r\n<data>\r\n", ended by a zero-size chunk and optional
// trailers. Signatures are not checked.
type awsChunkedReader struct {
	chunks *bufio.Reader
	body   io.Closer
	want   int64 // x-amz-decoded-content-length
	got    int64
	left   int64 // data left in the current chunk
	err    error
}

func (c *awsChunkedReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if c.left == 0 {
		size, err := c.nextChunk()
		if err != nil {
			c.err = err
			return 0, err
		}
		if size == 0 {
			c.err = c.finish()
			return 0, c.err
		}
		c.left = size
	}
	n, err := c.chunks.Read(p[:min(int64(len(p)), c.left)])
	c.left -= int64(n)
	c.got += int64(n)
	switch {
	case c.got > c.want:
		c.err = malformedChunks("more data than x-amz-decoded-content-length %d", c.want)
	case c.left == 0:
		c.err = c.chunkEnd()
	case errors.Is(err, io.EOF):
		c.err = io.ErrUnexpectedEOF
	case err != nil:
		c.err = err
	}
	return n, c.err
}

func (c *awsChunkedReader) Close() error { return c.body.Close() }

func (c *awsChunkedReader) nextChunk() (int64, error) {
	line, err := c.chunks.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return 0, malformedChunks("chunk header longer than %d bytes", c.chunks.Size())
	}
	if errors.Is(err, io.EOF) {
		return 0, io.ErrUnexpectedEOF
	}
	if err != nil {
		return 0, err
	}
	sizeHex, _, _ := strings.Cut(strings.TrimRight(string(line), "\r\n"), ";")
	size, err := strconv.ParseInt(strings.TrimSpace(sizeHex), 16, 64)
	if err != nil || size < 0 {
		return 0, malformedChunks("bad chunk header %q", line)
	}
	return size, nil
}

func (c *awsChunkedReader) chunkEnd() error {
	var crlf [2]byte
	if _, err := io.ReadFull(c.chunks, crlf[:]); err != nil {
		return io.ErrUnexpectedEOF
	}
	if string(crlf[:]) != "\r\n" {
		return malformedChunks("chunk data not followed by CRLF")
	}
	return nil
}

// finish skips the trailers after the last chunk and checks the decoded length.
func (c *awsChunkedReader) finish() error {
	n, err := io.Copy(io.Discard, io.LimitReader(c.chunks, awsChunkTrailerLimit+1))
	if err != nil {
		return err
	}
	if n > awsChunkTrailerLimit {
		return malformedChunks("more than %d bytes after the last chunk", awsChunkTrailerLimit)
	}
	if c.got != c.want {
		return malformedChunks("%d bytes of data, x-amz-decoded-content-length says %d", c.got, c.want)
	}
	return io.EOF
}

func malformedChunks(format string, args ...any) error {
	return gofakes3.ErrorMessagef(gofakes3.ErrIncompleteBody, "aws-chunked body: "+format, args...)
}

// fsBackend is gofakes3's filesystem backend, which writes objects in place while holding one
// lock for the whole server, with bodies spooled to a file first and multipart uploads on disk.
type fsBackend struct {
	*s3afero.MultiBucketBackend
	tmpDir string
	log    *slog.Logger

	mu      sync.Mutex
	uploads map[gofakes3.UploadID]*multipartUpload
}

var _ gofakes3.MultipartBackend = (*fsBackend)(nil)

// PutObject receives the whole body before the stored object is touched: a failed upload
// leaves the old object intact, and other requests don't wait on a slow client.
func (b *fsBackend) PutObject(bucket, key string, meta map[string]string, input io.Reader, size int64,
	conditions *gofakes3.PutConditions,
) (gofakes3.PutObjectResult, error) {
	spool, err := os.CreateTemp(b.tmpDir, "put-*")
	if err != nil {
		return gofakes3.PutObjectResult{}, fmt.Errorf("spool %s/%s: %w", bucket, key, err)
	}
	defer os.Remove(spool.Name())
	defer spool.Close()

	n, err := io.Copy(spool, input)
	if err != nil {
		return gofakes3.PutObjectResult{}, bodyError(err)
	}
	if n != size {
		return gofakes3.PutObjectResult{}, gofakes3.ErrorMessagef(gofakes3.ErrIncompleteBody,
			"received %d bytes, expected %d", n, size)
	}
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return gofakes3.PutObjectResult{}, fmt.Errorf("spool %s/%s: %w", bucket, key, err)
	}
	return b.MultiBucketBackend.PutObject(bucket, key, meta, spool, n, conditions)
}

// CopyObject goes through the spooling PutObject: the embedded one truncates the
// destination before reading the source, which empties an object copied onto itself.
func (b *fsBackend) CopyObject(srcBucket, srcKey, dstBucket, dstKey string, meta map[string]string) (gofakes3.CopyObjectResult, error) {
	return gofakes3.CopyObject(b, srcBucket, srcKey, dstBucket, dstKey, meta)
}

type multipartUpload struct {
	bucket, key string
	meta        map[string]string
	initiated   time.Time
	dir         string
	parts       map[int]uploadedPart
}

type uploadedPart struct {
	etag     string // quoted hex MD5
	size     int64
	modified time.Time
}

func (b *fsBackend) CreateMultipartUpload(bucket, key string, meta map[string]string) (gofakes3.UploadID, error) {
	id := gofakes3.UploadID(rand.Text())
	dir := filepath.Join(b.tmpDir, "upload-"+string(id))
	if err := os.Mkdir(dir, 0o700); err != nil {
		return "", fmt.Errorf("create upload %s/%s: %w", bucket, key, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.uploads[id] = &multipartUpload{
		bucket: bucket, key: key, meta: meta, initiated: time.Now(), dir: dir,
		parts: make(map[int]uploadedPart),
	}
	return id, nil
}

func (b *fsBackend) UploadPart(bucket, key string, id gofakes3.UploadID, partNumber int, contentLength int64, input io.Reader) (string, error) {
	b.mu.Lock()
	up, err := b.uploadLocked(bucket, key, id)
	b.mu.Unlock()
	if err != nil {
		return "", err
	}

	f, err := os.CreateTemp(up.dir, "part-*")
	if err != nil {
		return "", fmt.Errorf("upload part %d of %s/%s: %w", partNumber, bucket, key, err)
	}
	defer os.Remove(f.Name()) // fails harmlessly once renamed
	hash := md5.New()
	n, err := io.Copy(io.MultiWriter(f, hash), input)
	if err != nil {
		f.Close()
		return "", bodyError(err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("upload part %d of %s/%s: %w", partNumber, bucket, key, err)
	}
	if n != contentLength {
		return "", gofakes3.ErrorMessagef(gofakes3.ErrIncompleteBody, "received %d bytes, expected %d", n, contentLength)
	}

	b.mu.Lock()
	defer b.mu.Unlock()
	// The upload may have been completed or aborted meanwhile.
	if _, err := b.uploadLocked(bucket, key, id); err != nil {
		return "", err
	}
	if err := os.Rename(f.Name(), partPath(up, partNumber)); err != nil {
		return "", fmt.Errorf("upload part %d of %s/%s: %w", partNumber, bucket, key, err)
	}
	etag := `"` + hex.EncodeToString(hash.Sum(nil)) + `"`
	up.parts[partNumber] = uploadedPart{etag: etag, size: n, modified: time.Now()}
	return etag, nil
}

// bodyError makes a request body that ends early a client error: gofakes3 answers other
// errors with status 500, which clients retry, and logs them as server errors.
func bodyError(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return gofakes3.ErrorMessage(gofakes3.ErrIncompleteBody, "request body ended early")
	}
	return err
}

func partPath(up *multipartUpload, partNumber int) string {
	return filepath.Join(up.dir, strconv.Itoa(partNumber))
}

// minPartSize is S3's (and MinIO's) smallest part but the last; enforced so that code which
// passes here does not fail against them.
const minPartSize = 5 << 20

func (b *fsBackend) CompleteMultipartUpload(bucket, key string, id gofakes3.UploadID, input *gofakes3.CompleteMultipartUploadRequest) (gofakes3.VersionID, string, error) {
	b.mu.Lock()
	up, err := b.uploadLocked(bucket, key, id)
	if err == nil {
		err = checkCompletedParts(up, input.Parts)
	}
	if err != nil {
		b.mu.Unlock()
		return "", "", err
	}
	delete(b.uploads, id)
	b.mu.Unlock()
	defer os.RemoveAll(up.dir)

	var size int64
	paths := make([]string, len(input.Parts))
	etags := md5.New()
	for i, p := range input.Parts {
		part := up.parts[p.PartNumber]
		size += part.size
		paths[i] = partPath(up, p.PartNumber)
		sum, err := hex.DecodeString(strings.Trim(part.etag, `"`))
		if err != nil {
			return "", "", fmt.Errorf("complete upload of %s/%s: part %d etag %s: %w", bucket, key, p.PartNumber, part.etag, err)
		}
		etags.Write(sum)
	}
	body := &filesReader{paths: paths}
	defer body.Close()
	// The parts are local files already: no spooling.
	result, err := b.MultiBucketBackend.PutObject(bucket, key, up.meta, body, size, nil)
	if err != nil {
		return "", "", err
	}
	return result.VersionID, fmt.Sprintf(`"%x-%d"`, etags.Sum(nil), len(input.Parts)), nil
}

func checkCompletedParts(up *multipartUpload, parts []gofakes3.CompletedPart) error {
	if len(parts) == 0 {
		return gofakes3.ErrorMessage(gofakes3.ErrMalformedXML, "no parts in the complete request")
	}
	for i, p := range parts {
		if i > 0 && p.PartNumber <= parts[i-1].PartNumber {
			return gofakes3.ErrInvalidPartOrder
		}
		part, ok := up.parts[p.PartNumber]
		if !ok || strings.Trim(p.ETag, `"`) != strings.Trim(part.etag, `"`) {
			return gofakes3.ErrorMessagef(gofakes3.ErrInvalidPart, "part %d with etag %s was not uploaded", p.PartNumber, p.ETag)
		}
		if part.size < minPartSize && i < len(parts)-1 {
			// S3 says EntityTooSmall, a code gofakes3 would answer with status 500, which clients retry.
			return gofakes3.ErrorMessagef(gofakes3.ErrInvalidPart, "EntityTooSmall: part %d has %d bytes, less than the minimum %d",
				p.PartNumber, part.size, minPartSize)
		}
	}
	return nil
}

func (b *fsBackend) AbortMultipartUpload(bucket, key string, id gofakes3.UploadID) error {
	b.mu.Lock()
	up, err := b.uploadLocked(bucket, key, id)
	if err == nil {
		delete(b.uploads, id)
	}
	b.mu.Unlock()
	if err != nil {
		return err
	}
	if err := os.RemoveAll(up.dir); err != nil {
		return fmt.Errorf("abort upload of %s/%s: %w", bucket, key, err)
	}
	return nil
}

func (b *fsBackend) ListParts(bucket, key string, id gofakes3.UploadID, marker int, limit int64) (*gofakes3.ListMultipartUploadPartsResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	up, err := b.uploadLocked(bucket, key, id)
	if err != nil {
		return nil, err
	}
	numbers := make([]int, 0, len(up.parts))
	for n := range up.parts {
		if n > marker {
			numbers = append(numbers, n)
		}
	}
	slices.Sort(numbers)

	result := &gofakes3.ListMultipartUploadPartsResult{
		Bucket: bucket, Key: key, UploadID: id, StorageClass: "STANDARD",
		PartNumberMarker: marker, MaxParts: limit,
	}
	for _, n := range numbers {
		if int64(len(result.Parts)) >= limit {
			result.IsTruncated = true
			break
		}
		part := up.parts[n]
		result.Parts = append(result.Parts, gofakes3.ListMultipartUploadPartItem{
			PartNumber: n, ETag: part.etag, Size: part.size, LastModified: gofakes3.NewContentTime(part.modified),
		})
		result.NextPartNumberMarker = n
	}
	return result, nil
}

func (b *fsBackend) ListMultipartUploads(bucket string, marker *gofakes3.UploadListMarker, prefix gofakes3.Prefix, limit int64) (*gofakes3.ListMultipartUploadsResult, error) {
	b.mu.Lock()
	var ids []gofakes3.UploadID
	for id, up := range b.uploads {
		if up.bucket == bucket {
			ids = append(ids, id)
		}
	}
	// Sorted by key, then by initiation, as S3 lists them.
	slices.SortFunc(ids, func(x, y gofakes3.UploadID) int {
		ux, uy := b.uploads[x], b.uploads[y]
		return cmp.Or(strings.Compare(ux.key, uy.key), ux.initiated.Compare(uy.initiated), strings.Compare(string(x), string(y)))
	})
	uploads := make([]*multipartUpload, len(ids))
	for i, id := range ids {
		uploads[i] = b.uploads[id]
	}
	b.mu.Unlock()

	result := &gofakes3.ListMultipartUploadsResult{
		Bucket: bucket, MaxUploads: limit, Prefix: prefix.Prefix, Delimiter: prefix.Delimiter,
	}
	if marker != nil {
		result.KeyMarker, result.UploadIDMarker = marker.Object, marker.UploadID
	}
	seenPrefixes := make(map[string]bool)
	var lastKey string
	var lastID gofakes3.UploadID
	for i, up := range uploads {
		if marker != nil && (up.key < marker.Object || (up.key == marker.Object && (marker.UploadID == "" || ids[i] <= marker.UploadID))) {
			continue
		}
		var match gofakes3.PrefixMatch
		if !prefix.Match(up.key, &match) {
			continue
		}
		if int64(len(result.Uploads)+len(result.CommonPrefixes)) >= limit {
			result.IsTruncated = true
			result.NextKeyMarker, result.NextUploadIDMarker = lastKey, lastID
			break
		}
		lastKey, lastID = up.key, ids[i]
		if match.CommonPrefix {
			if !seenPrefixes[match.MatchedPart] {
				seenPrefixes[match.MatchedPart] = true
				result.CommonPrefixes = append(result.CommonPrefixes, match.AsCommonPrefix())
			}
			continue
		}
		result.Uploads = append(result.Uploads, gofakes3.ListMultipartUploadItem{
			Key: up.key, UploadID: ids[i], StorageClass: "STANDARD", Initiated: gofakes3.NewContentTime(up.initiated),
		})
	}
	return result, nil
}

func (b *fsBackend) uploadLocked(bucket, key string, id gofakes3.UploadID) (*multipartUpload, error) {
	up, ok := b.uploads[id]
	if !ok || up.bucket != bucket || up.key != key {
		return nil, gofakes3.ErrNoSuchUpload
	}
	return up, nil
}

// filesReader reads files one after another, opening each only when its turn comes.
type filesReader struct {
	paths []string
	cur   *os.File
}

func (r *filesReader) Read(p []byte) (int, error) {
	for {
		if r.cur == nil {
			if len(r.paths) == 0 {
				return 0, io.EOF
			}
			f, err := os.Open(r.paths[0])
			if err != nil {
				return 0, err
			}
			r.cur, r.paths = f, r.paths[1:]
		}
		n, err := r.cur.Read(p)
		if errors.Is(err, io.EOF) {
			r.cur.Close()
			r.cur = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

func (r *filesReader) Close() error {
	if r.cur == nil {
		return nil
	}
	return r.cur.Close()
}

// s3Logger passes gofakes3's errors and warnings to slog; its info lines trace every request.
type s3Logger struct{ log *slog.Logger }

func (l s3Logger) Print(level gofakes3.LogLevel, v ...any) {
	switch level {
	case gofakes3.LogErr:
		l.log.Error("s3 server error", "detail", fmt.Sprint(v...))
	case gofakes3.LogWarn:
		l.log.Warn("s3 server warning", "detail", fmt.Sprint(v...))
	}
}
