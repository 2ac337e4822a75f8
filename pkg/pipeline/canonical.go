package pipeline

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
)

// Canonical is the pipeline as deterministic JSON: defaults filled in, object
// keys sorted, durations in their shortest form, no HTML escaping. Two specs
// that differ only in key order, formatting, or defaults written out versus
// left implicit give the same bytes. p itself is not modified.
func (p *Pipeline) Canonical() ([]byte, error) {
	raw, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encode pipeline: %w", err)
	}
	// A copy through JSON, so defaulting does not touch the caller's value.
	var c Pipeline
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("copy pipeline: %w", err)
	}
	c.SetDefaults()
	if raw, err = json.Marshal(&c); err != nil {
		return nil, fmt.Errorf("encode pipeline: %w", err)
	}
	// Struct fields encode in declaration order and maps sorted: a round
	// through generic values sorts every key. UseNumber keeps numbers as written.
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var generic any
	if err := dec.Decode(&generic); err != nil {
		return nil, fmt.Errorf("decode canonical pipeline: %w", err)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(generic); err != nil {
		return nil, fmt.Errorf("encode canonical pipeline: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// Digest is the sha256 (hex) of Canonical; empty when the pipeline cannot be
// encoded, which Parse rules out.
func (p *Pipeline) Digest() string {
	b, err := p.Canonical()
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
