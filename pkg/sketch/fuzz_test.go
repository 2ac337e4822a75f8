package sketch

import (
	"bytes"
	"encoding"
	"strconv"
	"testing"
)

type binarySketch interface {
	encoding.BinaryMarshaler
	encoding.BinaryUnmarshaler
}

// FuzzDecode feeds arbitrary bytes to every decoder: none may panic, and
// whatever decodes must encode back to a blob that decodes to the same.
func FuzzDecode(f *testing.F) {
	h := NewHLL()
	k := NewKLL(DefaultKLLK)
	tk := NewTopK(8)
	var m Moments
	for i := range 3000 {
		h.AddString(strconv.Itoa(i))
		k.Update(float64(i % 700))
		tk.Add(strconv.Itoa(i % 13))
		m.Add(float64(i))
	}
	for _, s := range []binarySketch{NewHLL(), h, NewKLL(16), k, NewTopK(4), tk, &m} {
		blob, _ := s.MarshalBinary()
		f.Add(blob)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, fresh := range []func() binarySketch{
			func() binarySketch { return NewHLL() },
			func() binarySketch { return NewKLL(DefaultKLLK) },
			func() binarySketch { return NewTopK(2) },
			func() binarySketch { return &Moments{} },
		} {
			s := fresh()
			if s.UnmarshalBinary(data) != nil {
				continue
			}
			once, err := s.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			again := fresh()
			if err := again.UnmarshalBinary(once); err != nil {
				t.Fatalf("re-encoded %T does not decode: %v", s, err)
			}
			twice, _ := again.MarshalBinary()
			if !bytes.Equal(once, twice) {
				t.Fatalf("%T encoding is not stable", s)
			}
			// Decoded state must be usable.
			switch s := s.(type) {
			case *KLL:
				s.Update(1)
				s.Quantile(0.5)
			case *TopK:
				s.Add("x")
				s.Top(3)
			case *HLL:
				s.Estimate()
			}
		}
	})
}
