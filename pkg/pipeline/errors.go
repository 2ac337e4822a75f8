package pipeline

import (
	"fmt"
	"strings"
)

// FieldError is one problem in a spec. Path names the field the way the
// document nests it, e.g. "spec.evaluation.gates[2]"; it is empty for a
// problem with the document as a whole (a YAML syntax error).
type FieldError struct {
	Path    string
	Message string
}

func (e FieldError) Error() string {
	if e.Path == "" {
		return e.Message
	}
	return e.Path + ": " + e.Message
}

// Errors is every problem found in a spec, one per field.
type Errors []FieldError

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

func (es *Errors) add(path, format string, args ...any) {
	*es = append(*es, FieldError{Path: path, Message: fmt.Sprintf(format, args...)})
}

// child and index build paths: child("spec", "model") is "spec.model".
func child(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func index(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

// under reports whether path is at or below one of the given paths.
func under(path string, roots map[string]bool) bool {
	for p := path; ; {
		if roots[p] {
			return true
		}
		cut := strings.LastIndexAny(p, ".[")
		if cut < 0 {
			return roots[""]
		}
		p = p[:cut]
	}
}
