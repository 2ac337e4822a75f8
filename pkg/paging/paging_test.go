package paging

import "testing"

func TestRoundTripAndGarbage(t *testing.T) {
	if k, err := Key(Token("models/a")); err != nil || k != "models/a" {
		t.Fatalf("%q %v", k, err)
	}
	if n, ok, err := IntKey(IntToken(42)); err != nil || !ok || n != 42 {
		t.Fatalf("%d %v %v", n, ok, err)
	}
	if _, ok, err := IntKey(""); ok || err != nil {
		t.Fatal("empty token is the first page")
	}
	for _, bad := range []string{"garbage!", Token("x")[:2], "aGVsbG8"} {
		if _, err := Key(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, _, err := IntKey(Token("abc")); err == nil {
		t.Error("non-integer key accepted")
	}
	if Size(0) != DefaultSize || Size(7) != 7 {
		t.Error("Size")
	}
}
