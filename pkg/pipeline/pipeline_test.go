package pipeline

import (
	"encoding/json"
	"testing"
	"time"
)

func TestDuration(t *testing.T) {
	for in, want := range map[string]string{
		"2m": "2m", "120s": "2m", "1h0m": "1h", "90m": "1h30m", "7d": "168h", "1.5s": "1.5s", "250ms": "250ms", "0s": "0s", "-5m": "-5m",
	} {
		d, err := ParseDuration(in)
		if err != nil {
			t.Errorf("ParseDuration(%q) = %v", in, err)
			continue
		}
		if d.String() != want {
			t.Errorf("ParseDuration(%q).String() = %q, want %q", in, d, want)
		}
		b, _ := json.Marshal(d)
		var back Duration
		if err := json.Unmarshal(b, &back); err != nil || back != d {
			t.Errorf("JSON round trip of %q: %s -> %v, %v", in, b, back, err)
		}
	}
	for _, bad := range []string{"", "5", "1.5d", "d", "-1d", "soon"} {
		if _, err := ParseDuration(bad); err == nil {
			t.Errorf("ParseDuration(%q) accepted", bad)
		}
	}
	if d, _ := ParseDuration("1d"); d.Duration != 24*time.Hour {
		t.Errorf("1d = %v", d.Duration)
	}
}
