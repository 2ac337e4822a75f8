package devstack

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

const testBucket = "artifacts"

func startTestS3(t *testing.T, dir string) *S3 {
	t.Helper()
	s, err := StartS3(S3Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(context.Background()) })
	return s
}

// recordingTransport remembers the payload signing mode of each upload request.
type recordingTransport struct {
	mu    sync.Mutex
	modes map[string]bool
}

func (rt *recordingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPut {
		rt.mu.Lock()
		rt.modes[r.Header.Get("X-Amz-Content-Sha256")] = true
		rt.mu.Unlock()
	}
	return http.DefaultTransport.RoundTrip(r)
}

func newMinioClient(t *testing.T, s *S3, accessKey string, transport http.RoundTripper) *minio.Client {
	t.Helper()
	client, err := minio.New(s.Endpoint, &minio.Options{
		Creds:     credentials.NewStaticV4(accessKey, s.SecretKey, ""),
		Transport: transport,
	})
	if err != nil {
		t.Fatal(err)
	}
	return client
}

func makeTestBucket(t *testing.T, client *minio.Client) {
	t.Helper()
	if err := client.MakeBucket(context.Background(), testBucket, minio.MakeBucketOptions{}); err != nil {
		t.Fatalf("make bucket: %v", err)
	}
}

// randomBytes is a reader of n pseudo-random bytes, the same for the same seed.
func randomBytes(seed uint64, n int64) io.Reader {
	return io.LimitReader(rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)}), n)
}

func sha256Of(t *testing.T, r io.Reader) [sha256.Size]byte {
	t.Helper()
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		t.Fatalf("hash: %v", err)
	}
	return [sha256.Size]byte(h.Sum(nil))
}

// onlyReader hides everything but Read, as a network stream would.
type onlyReader struct{ io.Reader }

func TestS3MinioUploadsStoreExactBytes(t *testing.T) {
	dir := t.TempDir()
	s := startTestS3(t, dir)
	transport := &recordingTransport{modes: make(map[string]bool)}
	client := newMinioClient(t, s, s.AccessKey, transport)
	makeTestBucket(t, client)
	ctx := context.Background()

	for i, tc := range []struct {
		name string
		size int64
		// -1 uploads as a stream of unknown size: multipart beyond one part.
		declared int64
	}{
		{"empty", 0, 0},
		{"empty unknown size", 0, -1},
		{"small", 1000, 1000},
		{"small unknown size", 1000, -1},
		{"64MiB", 64 << 20, 64 << 20},
		{"64MiB unknown size", 64 << 20, -1},
		{"not a part multiple unknown size", 40<<20 + 123, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := fmt.Sprintf("objects/%d", i)
			want := sha256Of(t, randomBytes(uint64(i), tc.size))
			_, err := client.PutObject(ctx, testBucket, key, onlyReader{randomBytes(uint64(i), tc.size)}, tc.declared,
				minio.PutObjectOptions{PartSize: 16 << 20, ContentType: "application/octet-stream"})
			if err != nil {
				t.Fatalf("put: %v", err)
			}

			obj, err := client.GetObject(ctx, testBucket, key, minio.GetObjectOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer obj.Close()
			if got := sha256Of(t, obj); got != want {
				t.Errorf("read back sha256 %x, want %x", got, want)
			}
			f, err := os.Open(filepath.Join(dir, "buckets", testBucket, key))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if got := sha256Of(t, f); got != want {
				t.Errorf("stored file sha256 %x, want %x", got, want)
			}
			info, err := client.StatObject(ctx, testBucket, key, minio.StatObjectOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if info.Size != tc.size || info.ContentEncoding != "" || info.ContentType != "application/octet-stream" {
				t.Errorf("stat: size %d, content encoding %q, content type %q; want %d, none, application/octet-stream",
					info.Size, info.ContentEncoding, info.ContentType, tc.size)
			}
		})
	}
	if !transport.modes["STREAMING-AWS4-HMAC-SHA256-PAYLOAD"] {
		t.Errorf("minio-go sent no aws-chunked upload (payload modes %v): the decoding is untested", transport.modes)
	}
	entries, err := os.ReadDir(filepath.Join(dir, "tmp"))
	if err != nil || len(entries) != 0 {
		t.Errorf("tmp holds %d entries after the uploads (%v), want none", len(entries), err)
	}
}

func TestS3SurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s := startTestS3(t, dir)
	client := newMinioClient(t, s, s.AccessKey, nil)
	makeTestBucket(t, client)
	if _, err := client.PutObject(ctx, testBucket, "models/m.json", strings.NewReader(`{"v":1}`), -1,
		minio.PutObjectOptions{UserMetadata: map[string]string{"Sha256": "abc"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}

	s = startTestS3(t, dir)
	client = newMinioClient(t, s, s.AccessKey, nil)
	obj, err := client.GetObject(ctx, testBucket, "models/m.json", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	body, err := io.ReadAll(obj)
	if err != nil {
		t.Fatalf("read after restart: %v", err)
	}
	info, _ := obj.Stat()
	if string(body) != `{"v":1}` || info.UserMetadata["Sha256"] != "abc" {
		t.Errorf("after restart: body %q, metadata %v", body, info.UserMetadata)
	}
}

func TestS3RejectsUnknownAccessKey(t *testing.T) {
	s := startTestS3(t, t.TempDir())
	_, err := newMinioClient(t, s, "intruder", nil).ListBuckets(context.Background())
	if code := minio.ToErrorResponse(err).Code; code != "InvalidAccessKeyId" {
		t.Errorf("list buckets with an unknown access key: error %v (code %q), want InvalidAccessKeyId", err, code)
	}
}

func TestS3BrokenUploadKeepsPreviousObject(t *testing.T) {
	s := startTestS3(t, t.TempDir())
	client := newMinioClient(t, s, s.AccessKey, nil)
	makeTestBucket(t, client)
	ctx := context.Background()
	if _, err := client.PutObject(ctx, testBucket, "k", strings.NewReader("previous"), 8, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}

	// A client that promises 1000 bytes and sends 500.
	conn, err := net.Dial("tcp", s.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "PUT /%s/k HTTP/1.1\r\nHost: %s\r\nContent-Length: 1000\r\n"+
		"Authorization: AWS4-HMAC-SHA256 Credential=%s/20240101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0\r\n\r\n",
		testBucket, s.Endpoint, s.AccessKey)
	conn.Write(bytes.Repeat([]byte("x"), 500))
	conn.(*net.TCPConn).CloseWrite()
	response, _ := io.ReadAll(conn) // the server has given up on the body once it answers
	if !bytes.HasPrefix(response, []byte("HTTP/1.1 400")) || !bytes.Contains(response, []byte("IncompleteBody")) {
		t.Errorf("short upload answered with %q, want 400 IncompleteBody", response)
	}

	if got := getString(t, client, "k"); got != "previous" {
		t.Errorf("after a broken upload the object is %q, want %q", got, "previous")
	}
}

func TestS3CopyOntoItselfKeepsContent(t *testing.T) {
	s := startTestS3(t, t.TempDir())
	client := newMinioClient(t, s, s.AccessKey, nil)
	makeTestBucket(t, client)
	ctx := context.Background()
	if _, err := client.PutObject(ctx, testBucket, "k", strings.NewReader("content"), 7, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := client.CopyObject(ctx,
		minio.CopyDestOptions{Bucket: testBucket, Object: "k", UserMetadata: map[string]string{"Sha256": "x"}, ReplaceMetadata: true},
		minio.CopySrcOptions{Bucket: testBucket, Object: "k"})
	if err != nil {
		t.Fatal(err)
	}
	if got := getString(t, client, "k"); got != "content" {
		t.Errorf("after copying onto itself the object is %q, want %q", got, "content")
	}
}

func TestS3MultipartUploadOnDisk(t *testing.T) {
	s := startTestS3(t, t.TempDir())
	client := newMinioClient(t, s, s.AccessKey, nil)
	makeTestBucket(t, client)
	core := &minio.Core{Client: client}
	ctx := context.Background()

	part1 := bytes.Repeat([]byte("a"), minPartSize)
	upload := func(t *testing.T, key string, parts ...[]byte) (string, []minio.CompletePart) {
		t.Helper()
		id, err := core.NewMultipartUpload(ctx, testBucket, key, minio.PutObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var done []minio.CompletePart
		for i, p := range parts {
			info, err := core.PutObjectPart(ctx, testBucket, key, id, i+1, bytes.NewReader(p), int64(len(p)), minio.PutObjectPartOptions{})
			if err != nil {
				t.Fatalf("part %d: %v", i+1, err)
			}
			done = append(done, minio.CompletePart{PartNumber: i + 1, ETag: info.ETag})
		}
		return id, done
	}

	t.Run("complete", func(t *testing.T) {
		id, parts := upload(t, "whole", part1, []byte("tail"))
		uploads, err := core.ListMultipartUploads(ctx, testBucket, "whole", "", "", "", 10)
		if err != nil || len(uploads.Uploads) != 1 || uploads.Uploads[0].UploadID != id {
			t.Errorf("list uploads: %+v, %v; want the one upload %s", uploads.Uploads, err, id)
		}
		listed, err := core.ListObjectParts(ctx, testBucket, "whole", id, 0, 10)
		if err != nil || len(listed.ObjectParts) != 2 || listed.ObjectParts[1].Size != 4 {
			t.Errorf("list parts: %+v, %v; want 2 parts, the second of 4 bytes", listed.ObjectParts, err)
		}
		if _, err := core.CompleteMultipartUpload(ctx, testBucket, "whole", id, parts, minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
		if got := getString(t, client, "whole"); got != string(part1)+"tail" {
			t.Errorf("completed object has %d bytes, want %d", len(got), len(part1)+4)
		}
	})

	t.Run("part too small", func(t *testing.T) {
		id, parts := upload(t, "small", []byte("head"), []byte("tail"))
		_, err := core.CompleteMultipartUpload(ctx, testBucket, "small", id, parts, minio.PutObjectOptions{})
		if code := minio.ToErrorResponse(err).Code; code != "InvalidPart" {
			t.Errorf("complete with a 4-byte first part: %v (code %q), want InvalidPart", err, code)
		}
	})

	t.Run("copy parts", func(t *testing.T) {
		source := append(bytes.Clone(part1), "tail"...)
		if _, err := client.PutObject(ctx, testBucket, "source", bytes.NewReader(source), int64(len(source)), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
		id, _ := upload(t, "copied")
		var parts []minio.CompletePart
		for i, rng := range [][2]int64{{0, minPartSize}, {minPartSize, 4}} {
			p, err := core.CopyObjectPart(ctx, testBucket, "source", testBucket, "copied", id, i+1, rng[0], rng[1], nil)
			if err != nil {
				t.Fatalf("copy part %d: %v", i+1, err)
			}
			parts = append(parts, p)
		}
		if _, err := core.CompleteMultipartUpload(ctx, testBucket, "copied", id, parts, minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
		if got := getString(t, client, "copied"); got != string(source) {
			t.Errorf("object copied in parts has %d bytes, want %d", len(got), len(source))
		}
	})

	t.Run("abort", func(t *testing.T) {
		id, parts := upload(t, "aborted", []byte("only"))
		if err := core.AbortMultipartUpload(ctx, testBucket, "aborted", id); err != nil {
			t.Fatal(err)
		}
		_, err := core.CompleteMultipartUpload(ctx, testBucket, "aborted", id, parts, minio.PutObjectOptions{})
		if code := minio.ToErrorResponse(err).Code; code != "NoSuchUpload" {
			t.Errorf("complete after abort: %v (code %q), want NoSuchUpload", err, code)
		}
	})
}

func TestS3MultipartUploadMemoryIsBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("uploads 96 MiB")
	}
	s := startTestS3(t, t.TempDir())
	client := newMinioClient(t, s, s.AccessKey, nil)
	makeTestBucket(t, client)
	const size, partSize = 96 << 20, 16 << 20

	// gofakes3 alone holds the parts in memory and then a copy of them all: about 2.5 times
	// the object. Here the client's part buffer dominates.
	runtime.GC() // what earlier tests left would count, and set a high GC goal
	var peak atomic.Uint64
	stop := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Go(func() {
		for {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			peak.Store(max(peak.Load(), m.HeapInuse))
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	})
	_, err := client.PutObject(context.Background(), testBucket, "big", onlyReader{randomBytes(3, size)}, -1,
		minio.PutObjectOptions{PartSize: partSize})
	close(stop)
	sampler.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if limit := uint64(4 * partSize); peak.Load() > limit {
		t.Errorf("heap in use peaked at %d MiB while uploading %d MiB, want at most %d MiB", peak.Load()>>20, size>>20, limit>>20)
	}
}

func getString(t *testing.T, client *minio.Client, key string) string {
	t.Helper()
	obj, err := client.GetObject(context.Background(), testBucket, key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	body, err := io.ReadAll(obj)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	return string(body)
}

func TestS3AWSChunkedReader(t *testing.T) {
	sig := ";chunk-signature=" + strings.Repeat("0", 64)
	for _, tc := range []struct {
		name    string
		body    string
		decoded int64
		want    string
		wantErr bool
	}{
		{name: "signed", body: "5" + sig + "\r\nhello\r\n6" + sig + "\r\n world\r\n0" + sig + "\r\n\r\n", decoded: 11, want: "hello world"},
		{name: "signed, minio-go trailer", decoded: 5, want: "hello",
			body: "5" + sig + "\r\nhello\r\n0" + sig + "\r\nx-amz-checksum-crc32:NhCmhg==\n\r\nx-amz-trailer-signature:" + strings.Repeat("1", 64) + "\r\n\r\n"},
		{name: "unsigned, aws trailer", body: "5\r\nhello\r\n0\r\nx-amz-checksum-crc32:NhCmhg==\r\n\r\n", decoded: 5, want: "hello"},
		{name: "empty", body: "0" + sig + "\r\n\r\n", decoded: 0, want: ""},
		{name: "truncated chunk", body: "5" + sig + "\r\nhel", decoded: 5, wantErr: true},
		{name: "no last chunk", body: "5" + sig + "\r\nhello\r\n", decoded: 5, wantErr: true},
		{name: "no CRLF after data", body: "5" + sig + "\r\nhelloX0" + sig + "\r\n\r\n", decoded: 5, wantErr: true},
		{name: "more than declared", body: "5" + sig + "\r\nhello\r\n0" + sig + "\r\n\r\n", decoded: 4, wantErr: true},
		{name: "less than declared", body: "5" + sig + "\r\nhello\r\n0" + sig + "\r\n\r\n", decoded: 6, wantErr: true},
		{name: "bad size", body: "zz" + sig + "\r\nhello\r\n", decoded: 5, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := chunkedRequest(t, tc.body, tc.decoded)
			got, err := io.ReadAll(r.Body)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("decoded %q without error", got)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Fatalf("decoded %q, %v; want %q", got, err, tc.want)
			}
			if r.ContentLength != tc.decoded || r.Header.Get("Content-Encoding") != "gzip" ||
				r.Header.Get("X-Amz-Content-Sha256") != "UNSIGNED-PAYLOAD" {
				t.Errorf("headers after decoding: content length %d, %v", r.ContentLength, r.Header)
			}
		})
	}
}

func chunkedRequest(t *testing.T, body string, decoded int64) *http.Request {
	t.Helper()
	r, err := http.NewRequest(http.MethodPut, "http://s3/b/k", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("X-Amz-Content-Sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD")
	r.Header.Set("X-Amz-Decoded-Content-Length", fmt.Sprint(decoded))
	r.Header.Set("Content-Encoding", "aws-chunked,gzip")
	plain, err := decodeAWSChunked(r)
	if err != nil {
		t.Fatal(err)
	}
	return plain
}

func TestS3UnsignedTrailerUpload(t *testing.T) {
	s := startTestS3(t, t.TempDir())
	client := newMinioClient(t, s, s.AccessKey, nil)
	makeTestBucket(t, client)

	// The form AWS SDKs send with checksums: gofakes3 alone stores it verbatim.
	body := "5\r\nhello\r\n6\r\n world\r\n0\r\nx-amz-checksum-crc32:DUoRhQ==\r\n\r\n"
	req, err := http.NewRequest(http.MethodPut, "http://"+s.Endpoint+"/"+testBucket+"/k", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+s.AccessKey+"/20240101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0")
	req.Header.Set("X-Amz-Content-Sha256", "STREAMING-UNSIGNED-PAYLOAD-TRAILER")
	req.Header.Set("X-Amz-Decoded-Content-Length", "11")
	req.Header.Set("X-Amz-Trailer", "x-amz-checksum-crc32")
	req.Header.Set("Content-Encoding", "aws-chunked")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("put: status %s", resp.Status)
	}
	if got := getString(t, client, "k"); got != "hello world" {
		t.Errorf("stored %q, want %q", got, "hello world")
	}
}

func TestS3Stop(t *testing.T) {
	s, err := StartS3(S3Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(context.Background()); err != nil {
		t.Errorf("second stop: %v", err)
	}
	if conn, err := net.DialTimeout("tcp", s.Endpoint, time.Second); err == nil {
		conn.Close()
		t.Error("the server still accepts connections after Stop")
	}
}
