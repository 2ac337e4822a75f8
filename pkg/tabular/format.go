package tabular

import (
	"fmt"
	"mime"
	"path"
	"strings"
)

// Format is the encoding of a dataset file.
type Format string

const (
	CSV     Format = "csv"
	JSONL   Format = "jsonl"
	Parquet Format = "parquet"
)

// contentTypes maps every accepted media type to its format; the first
// listed for a format is its canonical one.
var contentTypes = []struct {
	mediaType string
	format    Format
}{
	{"text/csv", CSV},
	{"application/x-ndjson", JSONL},
	{"application/jsonl", JSONL},
	{"application/x-jsonlines", JSONL},
	{"application/vnd.apache.parquet", Parquet},
	{"application/x-parquet", Parquet},
}

const acceptedContentTypes = "text/csv, application/x-ndjson (or application/jsonl, application/x-jsonlines), " +
	"application/vnd.apache.parquet (or application/x-parquet)"

// FormatFromContentType returns the format a Content-Type names. Parameters
// (charset=utf-8) are accepted and ignored: text is always UTF-8.
// application/octet-stream is refused: it does not say which format the
// bytes are in.
func FormatFromContentType(ct string) (Format, error) {
	if strings.TrimSpace(ct) == "" {
		return "", fmt.Errorf("missing Content-Type: want %s", acceptedContentTypes)
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return "", fmt.Errorf("Content-Type %q: %v: want %s", ct, err, acceptedContentTypes)
	}
	for _, c := range contentTypes {
		if c.mediaType == mt {
			return c.format, nil
		}
	}
	return "", fmt.Errorf("unsupported Content-Type %q: want %s", mt, acceptedContentTypes)
}

// ContentType is the canonical media type of the format.
func (f Format) ContentType() string {
	for _, c := range contentTypes {
		if c.format == f {
			return c.mediaType
		}
	}
	return ""
}

// FormatFromFileName returns the format a file name's extension names:
// .csv, .jsonl, .ndjson or .parquet, each optionally followed by .gz.
func FormatFromFileName(name string) (Format, error) {
	ext := strings.ToLower(path.Ext(name))
	gzipped := ext == ".gz"
	if gzipped {
		ext = strings.ToLower(path.Ext(strings.TrimSuffix(name, path.Ext(name))))
	}
	switch ext {
	case ".csv":
		return CSV, nil
	case ".jsonl", ".ndjson":
		return JSONL, nil
	case ".parquet":
		if gzipped {
			return "", fmt.Errorf("file %q: gzip-compressed Parquet is not accepted: Parquet compresses its own pages", path.Base(name))
		}
		return Parquet, nil
	}
	return "", fmt.Errorf("file %q: unknown format: want a name ending in .csv, .jsonl, .ndjson or .parquet (optionally .gz)", path.Base(name))
}
