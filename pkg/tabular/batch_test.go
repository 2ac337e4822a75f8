package tabular

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestReadBatchMatchesNext reads files much larger than the read buffer,
// so that blocks of plain lines end mid-line and alternate with lines that
// need Next, in batches of several sizes: the records, the error and the
// canonical text must be Next's.
func TestReadBatchMatchesNext(t *testing.T) {
	lines := []func(i int) string{
		func(i int) string { return fmt.Sprintf("%d,x%d,%.3f", i, i%7, float64(i)/3) }, // plain
		func(i int) string { return fmt.Sprintf("%d,,", i) },                           // nulls
		func(i int) string { return fmt.Sprintf("%d,\"a, \"\"b\"\"\",1", i) },          // quoted
		func(i int) string { return fmt.Sprintf("%d,\"two\nlines\",2", i) },            // a line break in a value
		func(i int) string { return fmt.Sprintf("%d,crlf,3\r", i) },                    // CRLF
		func(i int) string { return "" },                                               // blank: skipped
		func(i int) string { return fmt.Sprintf("%d,José,ü", i) },                      // UTF-8
		func(i int) string { return fmt.Sprintf("%d,\"\",4", i) },                      // the empty string
	}
	for name, bad := range map[string]string{
		"clean":        "",
		"ragged":       "1,2",
		"too many":     "1,2,3,4",
		"invalid UTF8": "1,\xff,2",
		"NUL":          "1,\x00,2",
		"long field":   "1," + string(bytes.Repeat([]byte{'y'}, 300)) + ",2",
		"open quote":   "1,\"never closed,2",
	} {
		t.Run(name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(7, 7))
			var buf bytes.Buffer
			buf.WriteString("id,name,x\n")
			for i := range 30000 {
				k := 0
				if rng.IntN(10) == 0 {
					k = rng.IntN(len(lines))
				}
				buf.WriteString(lines[k](i))
				buf.WriteByte('\n')
				if bad != "" && i == 25000 {
					buf.WriteString(bad + "\n")
				}
			}
			data := buf.Bytes()
			header, records, err := readRecords(bytes.NewReader(data), CSV)
			if (err != nil) != (bad != "") {
				t.Fatalf("Next: error %v", err)
			}
			checkBatches(t, data, CSV, header, records, err)
			// A last line without its line break.
			data = append(data, "9,end,9"...)
			header, records, err = readRecords(bytes.NewReader(data), CSV)
			checkBatches(t, data, CSV, header, records, err)
			// Gzip: the reader's buffer then holds decompressed bytes.
			var gz bytes.Buffer
			zw := gzip.NewWriter(&gz)
			zw.Write(data)
			zw.Close()
			header, records, err = readRecords(bytes.NewReader(gz.Bytes()), CSV)
			checkBatches(t, gz.Bytes(), CSV, header, records, err)
		})
	}
}
