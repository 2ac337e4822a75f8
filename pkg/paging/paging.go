// Package paging is the one page-token format of every List RPC: an opaque
// token holding the last key of the previous page.
package paging

import (
	"encoding/base64"
	"strconv"

	"github.com/gyreml/gyre/pkg/apierr"
)

// DefaultSize is the page size when a request gives none.
const DefaultSize = 100

// Size is the requested page size, or the default.
func Size(n int32) int {
	if n <= 0 {
		return DefaultSize
	}
	return int(n)
}

// Token encodes the last key of a page.
func Token(key string) string {
	return base64.RawURLEncoding.EncodeToString([]byte("k:" + key))
}

// IntToken encodes an integer key.
func IntToken(key int64) string { return Token(strconv.FormatInt(key, 10)) }

// Key decodes a token ("" for the first page); a token not from this API is
// InvalidArgument on page_token.
func Key(token string) (string, error) {
	if token == "" {
		return "", nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(raw) < 2 || string(raw[:2]) != "k:" {
		return "", apierr.InvalidField("page_token", "not a page token from this API")
	}
	return string(raw[2:]), nil
}

// IntKey decodes an integer token; ok is false for the first page.
func IntKey(token string) (key int64, ok bool, err error) {
	s, err := Key(token)
	if err != nil || s == "" {
		return 0, false, err
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, false, apierr.InvalidField("page_token", "not a page token from this API")
	}
	return n, true, nil
}
