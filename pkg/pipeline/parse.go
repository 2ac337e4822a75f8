package pipeline

import (
	"bytes"
	"errors"
	"fmt"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
	"io"
	"math"
	"reflect"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Parse reads a Pipeline document (YAML, or JSON, which is YAML), fills the
// defaults and validates it. On any problem it returns Errors listing every
// one: unknown keys, values of the wrong type, and everything Validate finds.
func Parse(data []byte) (*Pipeline, error) {
	root, err := parseDocument(data)
	if err != nil {
		return nil, Errors{{Message: err.Error()}}
	}
	var p Pipeline
	d := decoder{budget: maxNodes, lines: map[string]int{"": root.Line}}
	d.value(root, reflect.ValueOf(&p).Elem(), "")
	p.SetDefaults()

	errs := d.errs
	// A field that could not be decoded is left zero; what Validate says about it adds nothing.
	undecoded := make(map[string]bool, len(d.errs))
	for _, e := range d.errs {
		undecoded[e.Path] = true
	}
	for _, e := range p.Validate() {
		if !under(e.Path, undecoded) {
			errs = append(errs, e)
		}
	}
	if len(errs) > 0 {
		// In the order a reader meets them in the file.
		slices.SortStableFunc(errs, func(a, b FieldError) int { return d.line(a.Path) - d.line(b.Path) })
		return nil, errs
	}
	return &p, nil
}

func parseDocument(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty document")
		}
		return nil, err
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("want one YAML document, found more than one")
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, errors.New("empty document")
	}
	return doc.Content[0], nil
}

// maxNodes bounds the walk so that nested aliases cannot expand a small
// document into billions of values.
const maxNodes = 100_000

// nodeDecoder is implemented by types whose YAML form is not their Go shape.
type nodeDecoder interface {
	decodeNode(d *decoder, n *yaml.Node, path string)
}

// decoder walks a YAML node tree into Go values by their json tags, strictly,
// recording every problem with its path instead of stopping at the first.
type decoder struct {
	errs   Errors
	budget int
	lines  map[string]int // path -> line in the document
}

// line is where path, or the nearest enclosing field written in the document, is.
func (d *decoder) line(path string) int {
	for {
		if l, ok := d.lines[path]; ok {
			return l
		}
		cut := strings.LastIndexAny(path, ".[")
		if cut < 0 {
			return d.lines[""]
		}
		path = path[:cut]
	}
}

func (d *decoder) value(n *yaml.Node, v reflect.Value, path string) {
	if d.budget--; d.budget < 0 {
		if d.budget == -1 {
			d.errs.add(path, "document too large (more than %d values, aliases expanded)", maxNodes)
		}
		return
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	if nd, ok := v.Addr().Interface().(nodeDecoder); ok {
		nd.decodeNode(d, n, path)
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		d.structure(n, v, path)
	case reflect.Pointer:
		elem := reflect.New(v.Type().Elem())
		d.value(n, elem.Elem(), path)
		v.Set(elem)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.errs.add(path, "want a list, got %s", describe(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			d.lines[index(path, i)] = item.Line
			d.value(item, s.Index(i), index(path, i))
		}
		v.Set(s)
	case reflect.Map:
		d.mapping(n, v, path)
	case reflect.Interface:
		if x := d.any(n, path); x != nil {
			v.Set(reflect.ValueOf(x))
		}
	default:
		d.scalar(n, v, path)
	}
}

func (d *decoder) structure(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.errs.add(path, "want a mapping, got %s", describe(n))
		return
	}
	fields := jsonFields(v.Type())
	seen := make(map[string]bool, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		if key.Tag == "!!merge" {
			d.value(val, v, path)
			continue
		}
		name := key.Value
		p := child(path, name)
		d.lines[p] = key.Line
		if key.Kind != yaml.ScalarNode {
			d.errs.add(path, "want field names, got %s as a key", describe(key))
			continue
		}
		if seen[name] {
			d.errs.add(p, "duplicate field")
			continue
		}
		seen[name] = true
		idx, ok := fields[name]
		if !ok {
			d.errs.add(p, "unknown field%s", suggest(name, fields))
			continue
		}
		d.value(val, v.Field(idx), p)
	}
}

func (d *decoder) mapping(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.errs.add(path, "want a mapping, got %s", describe(n))
		return
	}
	m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		if key.Kind != yaml.ScalarNode {
			d.errs.add(path, "want string keys, got %s as a key", describe(key))
			continue
		}
		p := child(path, key.Value)
		d.lines[p] = key.Line
		k := reflect.ValueOf(key.Value)
		if m.MapIndex(k).IsValid() {
			d.errs.add(p, "duplicate key")
			continue
		}
		elem := reflect.New(v.Type().Elem()).Elem()
		d.value(val, elem, p)
		m.SetMapIndex(k, elem)
	}
	v.Set(m)
}

// any decodes free-form values (training params) into JSON-compatible Go values.
func (d *decoder) any(n *yaml.Node, path string) any {
	switch n.Kind {
	case yaml.MappingNode:
		var m map[string]any
		d.mapping(n, reflect.ValueOf(&m).Elem(), path)
		return m
	case yaml.SequenceNode:
		var s []any
		d.value(n, reflect.ValueOf(&s).Elem(), path)
		return s
	case yaml.ScalarNode:
		var x any
		if err := n.Decode(&x); err != nil {
			d.errs.add(path, "invalid value %s", describe(n))
			return nil
		}
		switch x := x.(type) {
		case float64:
			if math.IsNaN(x) || math.IsInf(x, 0) {
				d.errs.add(path, "want a finite number, got %s", describe(n))
				return nil
			}
		case time.Time, []byte:
			// Kept as written, so the value survives JSON unchanged.
			return n.Value
		}
		return x
	}
	d.errs.add(path, "invalid value %s", describe(n))
	return nil
}

// scalar decodes into a string, bool, integer or float field. It converts
// by itself because yaml.v3 silently truncates 2.5 into an int.
func (d *decoder) scalar(n *yaml.Node, v reflect.Value, path string) {
	var want string
	switch v.Kind() {
	case reflect.String:
		want = "a string"
	case reflect.Bool:
		want = "true or false"
	case reflect.Int, reflect.Int64:
		want = "an integer"
	case reflect.Float64:
		want = "a number"
	default:
		panic(fmt.Sprintf("pipeline: no YAML decoding for %s", v.Type()))
	}
	var x any
	if n.Kind != yaml.ScalarNode || n.Decode(&x) != nil {
		d.errs.add(path, "want %s, got %s", want, describe(n))
		return
	}
	ok := false
	switch v.Kind() {
	case reflect.String:
		v.SetString(n.Value)
		ok = true
	case reflect.Bool:
		var b bool
		if b, ok = x.(bool); ok {
			v.SetBool(b)
		}
	case reflect.Int, reflect.Int64:
		var i int64
		if i, ok = asInt(x); ok && !v.OverflowInt(i) {
			v.SetInt(i)
		} else {
			ok = false
		}
	case reflect.Float64:
		var f float64
		if f, ok = asFloat(x); ok {
			v.SetFloat(f)
		}
	}
	if !ok {
		d.errs.add(path, "want %s, got %s", want, describe(n))
	}
}

func asInt(x any) (int64, bool) {
	switch x := x.(type) {
	case int:
		return int64(x), true
	case int64:
		return x, true
	case uint64:
		return int64(x), x <= math.MaxInt64
	case float64:
		// Whole numbers written as floats (100.0, or JSON that went through a float) are fine.
		return int64(x), x == math.Trunc(x) && math.Abs(x) < 1<<53
	}
	return 0, false
}

func asFloat(x any) (float64, bool) {
	switch x := x.(type) {
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case uint64:
		return float64(x), true
	case float64:
		return x, !math.IsNaN(x) && !math.IsInf(x, 0)
	}
	return 0, false
}

func (s *Schema) decodeNode(d *decoder, n *yaml.Node, path string) {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Value != schemaInfer {
			d.errs.add(path, "want %q or a list of columns, got %s", schemaInfer, describe(n))
		}
		s.Columns = nil
	case yaml.SequenceNode:
		if len(n.Content) == 0 {
			d.errs.add(path, "want %q or a list of columns, got an empty list", schemaInfer)
			return
		}
		d.value(n, reflect.ValueOf(&s.Columns).Elem(), path)
	default:
		d.errs.add(path, "want %q or a list of columns, got %s", schemaInfer, describe(n))
	}
}

func (dur *Duration) decodeNode(d *decoder, n *yaml.Node, path string) {
	if n.Kind != yaml.ScalarNode {
		d.errs.add(path, "want a duration like 2m or 1h30m, got %s", describe(n))
		return
	}
	parsed, err := ParseDuration(n.Value)
	if err != nil {
		d.errs.add(path, "want a duration like 2m or 1h30m, got %s", describe(n))
		return
	}
	*dur = parsed
}

// jsonFields maps a struct's json names to field indexes.
func jsonFields(t reflect.Type) map[string]int {
	fields := make(map[string]int, t.NumField())
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			fields[name] = i
		}
	}
	return fields
}

// suggest names the field a misspelt key most likely meant.
func suggest(key string, fields map[string]int) string {
	norm := func(s string) string { return strings.ToLower(strings.NewReplacer("_", "", "-", "").Replace(s)) }
	best, bestDist := "", 3
	for name := range fields {
		dist := editDistance(norm(key), norm(name))
		if dist < bestDist || (dist == bestDist && name < best) {
			best, bestDist = name, dist
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	v := n.Value
	if len(v) > 40 {
		v = v[:40] + "..."
	}
	return fmt.Sprintf("%q", v)
}

// FromStruct parses a pipeline as the registry returns it (the stored,
// defaulted document as a protobuf Struct).
func FromStruct(s *structpb.Struct) (*Pipeline, error) {
	raw, err := protojson.Marshal(s)
	if err != nil {
		return nil, err
	}
	return Parse(raw)
}
