package inference

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/gyreml/gyre/pkg/apierr"
	"github.com/gyreml/gyre/pkg/model"
)

// Open Inference Protocol data types Gyre reads and writes.
const (
	dtBool  = "BOOL"
	dtBytes = "BYTES"
	dtFP32  = "FP32"
	dtFP64  = "FP64"
	dtInt32 = "INT32"
	dtInt64 = "INT64"
)

// Output tensor names.
const (
	outputLabel         = "label"
	outputProbabilities = "probabilities"
	outputValue         = "value"
)

// numericDatatypes are the data types a numeric input accepts.
const numericDatatypes = "FP32, FP64, INT32, INT64 or BOOL"

// isNumericDatatype says whether dt carries numbers (BOOL as 0 and 1).
func isNumericDatatype(dt string) bool {
	switch dt {
	case dtFP64, dtFP32, dtInt64, dtInt32, dtBool, "INT8", "INT16", "UINT8", "UINT16", "UINT32", "UINT64":
		return true
	}
	return false
}

func isIntegerDatatype(dt string) bool {
	switch dt {
	case dtInt64, dtInt32, "INT8", "INT16", "UINT8", "UINT16", "UINT32", "UINT64":
		return true
	}
	return false
}

// inputTensor is one input tensor of a request, decoded from JSON or
// protobuf: numbers (NaN for a missing value) or strings.
type inputTensor struct {
	name     string
	datatype string
	shape    []int64
	// nums holds the elements of a numeric data type.
	nums []float64
	// strs holds the elements of a BYTES tensor; null marks elements given
	// as JSON null (nil when there are none).
	strs []string
	null []bool
}

func (t *inputTensor) reset() {
	t.name, t.datatype = "", ""
	t.shape = t.shape[:0]
	t.nums = t.nums[:0]
	clear(t.strs)
	t.strs = t.strs[:0]
	t.null = t.null[:0]
}

// count is how many elements the tensor holds.
func (t *inputTensor) count() int {
	if t.datatype == dtBytes {
		return len(t.strs)
	}
	return len(t.nums)
}

// isNull says whether BYTES element i is missing.
func (t *inputTensor) isNull(i int) bool { return len(t.null) > i && t.null[i] }

func (t *inputTensor) setNull(i int) {
	for len(t.null) <= i {
		t.null = append(t.null, false)
	}
	t.null[i] = true
}

// inputError is a bad request naming the input at fault.
func inputError(input, format string, args ...any) error {
	d := fmt.Sprintf(format, args...)
	return apierr.Invalid(fmt.Sprintf("input %q: %s", input, d), apierr.FieldViolation{Field: "inputs." + input, Description: d})
}

func shapeString(shape []int64) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, d := range shape {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatInt(d, 10))
	}
	b.WriteByte(']')
	return b.String()
}

// checkDatatype refuses data types Gyre does not read.
func checkDatatype(t *inputTensor) error {
	if t.datatype == dtBytes || isNumericDatatype(t.datatype) {
		return nil
	}
	if t.datatype == "" {
		return inputError(t.name, "datatype is required (%s, or BYTES)", numericDatatypes)
	}
	return inputError(t.name, "datatype %s is not supported (%s, or BYTES)", t.datatype, numericDatatypes)
}

// rows turns the request's tensors into model rows, in one of two layouts:
// one tensor per model input, each of shape [batch] or [batch, 1]; or a
// single tensor of shape [batch, n_inputs] whose name is not an input, its
// columns in the model's input order. Every problem is an error naming the
// input.
func (lm *loadedModel) rows(ts []inputTensor) ([]model.Row, error) {
	if len(ts) == 0 {
		return nil, apierr.Invalid(fmt.Sprintf("inputs: none given (the model reads %s)", lm.inputNames()),
			apierr.FieldViolation{Field: "inputs", Description: "required"})
	}
	for i := range ts {
		if err := checkDatatype(&ts[i]); err != nil {
			return nil, err
		}
		for _, d := range ts[i].shape {
			if d < 0 {
				return nil, inputError(ts[i].name, "shape %s has a negative dimension", shapeString(ts[i].shape))
			}
		}
	}
	if _, isInput := lm.index[ts[0].name]; len(ts) == 1 && !isInput {
		return lm.matrixRows(&ts[0])
	}
	return lm.tensorRows(ts)
}

// tensorRows reads one tensor per input.
func (lm *loadedModel) tensorRows(ts []inputTensor) ([]model.Row, error) {
	n := len(lm.inputs)
	// by[j] is the tensor of input j.
	var byStack [32]*inputTensor
	by := byStack[:0]
	if n <= len(byStack) {
		by = byStack[:n]
	} else {
		by = make([]*inputTensor, n)
	}
	batch, batchFrom := -1, ""
	for i := range ts {
		t := &ts[i]
		j, ok := lm.index[t.name]
		if !ok {
			return nil, inputError(t.name, "not an input of the model (it reads %s)", lm.inputNames())
		}
		if by[j] != nil {
			return nil, inputError(t.name, "given twice")
		}
		by[j] = t
		in := lm.inputs[j]
		switch {
		case in.Kind == model.Categorical && t.datatype != dtBytes:
			return nil, inputError(t.name, "datatype %s, but the input is categorical: send BYTES", t.datatype)
		case in.Kind != model.Categorical && t.datatype == dtBytes:
			return nil, inputError(t.name, "datatype BYTES, but the input is numeric: send %s", numericDatatypes)
		}
		if len(t.shape) == 0 || len(t.shape) > 2 || (len(t.shape) == 2 && t.shape[1] != 1) {
			return nil, inputError(t.name, "shape %s: want [batch] or [batch, 1]", shapeString(t.shape))
		}
		if b := int(t.shape[0]); b != t.count() {
			return nil, inputError(t.name, "shape %s holds %d values, but data has %d", shapeString(t.shape), b, t.count())
		}
		switch {
		case batch < 0:
			batch, batchFrom = int(t.shape[0]), t.name
		case int(t.shape[0]) != batch:
			return nil, inputError(t.name, "batch size %d, but input %q has %d", t.shape[0], batchFrom, batch)
		}
	}
	for j, t := range by {
		if t == nil {
			return nil, inputError(lm.inputs[j].Name, "missing (the model reads %s)", lm.inputNames())
		}
	}
	values := make([]model.Value, batch*n)
	rows := make([]model.Row, batch)
	for r := range rows {
		rows[r] = values[r*n : (r+1)*n : (r+1)*n]
	}
	for j, t := range by {
		if t.datatype == dtBytes {
			for r := range batch {
				if s := t.strs[r]; s != "" && !t.isNull(r) {
					values[r*n+j] = model.Value{S: s}
				} else {
					values[r*n+j] = model.Value{Null: true}
				}
			}
			continue
		}
		for r, f := range t.nums[:batch] {
			if math.IsNaN(f) {
				values[r*n+j] = model.Value{Null: true}
			} else {
				values[r*n+j] = model.Value{F: f}
			}
		}
	}
	return rows, nil
}

// matrixRows reads a single [batch, n_inputs] tensor, columns in input
// order. A numeric tensor needs every input numeric; a BYTES tensor may mix
// numbers (as text) and categories.
func (lm *loadedModel) matrixRows(t *inputTensor) ([]model.Row, error) {
	n := len(lm.inputs)
	if len(t.shape) != 2 || t.shape[1] != int64(n) {
		return nil, inputError(t.name, "not an input of the model (it reads %s); a single tensor of all inputs must have shape [batch, %d], not %s",
			lm.inputNames(), n, shapeString(t.shape))
	}
	if t.shape[0]*int64(n) != int64(t.count()) || t.shape[0] > int64(t.count()) {
		return nil, inputError(t.name, "shape %s holds %d values, but data has %d", shapeString(t.shape), t.shape[0]*int64(n), t.count())
	}
	batch := int(t.shape[0])
	values := make([]model.Value, batch*n)
	rows := make([]model.Row, batch)
	for r := range rows {
		rows[r] = values[r*n : (r+1)*n : (r+1)*n]
	}
	if t.datatype != dtBytes {
		for _, in := range lm.inputs {
			if in.Kind == model.Categorical {
				return nil, inputError(in.Name, "categorical, but tensor %q is %s: send BYTES, or one tensor per input", t.name, t.datatype)
			}
		}
		for i, f := range t.nums {
			if math.IsNaN(f) {
				values[i] = model.Value{Null: true}
			} else {
				values[i] = model.Value{F: f}
			}
		}
		return rows, nil
	}
	for i, s := range t.strs {
		j := i % n
		if s == "" || t.isNull(i) {
			values[i] = model.Value{Null: true}
			continue
		}
		if lm.inputs[j].Kind == model.Categorical {
			values[i] = model.Value{S: s}
			continue
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, inputError(lm.inputs[j].Name, "column %d of tensor %q, row %d: %q is not a number", j, t.name, i/n, s)
		}
		if math.IsNaN(f) {
			values[i] = model.Value{Null: true}
		} else {
			values[i] = model.Value{F: f}
		}
	}
	return rows, nil
}

// outputSet says which outputs a request wants.
type outputSet struct {
	label, probabilities, value bool
}

// outputsOf checks requested output names against the model; none
// requested means all of the model's outputs.
func (lm *loadedModel) outputsOf(names []string) (outputSet, error) {
	classify := lm.task != model.Regression
	if len(names) == 0 {
		return outputSet{label: classify, probabilities: classify, value: true}, nil
	}
	var o outputSet
	for _, name := range names {
		switch {
		case name == outputValue:
			o.value = true
		case name == outputLabel && classify:
			o.label = true
		case name == outputProbabilities && classify:
			o.probabilities = true
		default:
			want := outputValue
			if classify {
				want = "label, probabilities, value"
			}
			return o, apierr.Invalid(fmt.Sprintf("output %q: the model has no such output (it has %s)", name, want),
				apierr.FieldViolation{Field: "outputs." + name, Description: "unknown output"})
		}
	}
	return o, nil
}
