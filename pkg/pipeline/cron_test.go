package pipeline

import (
	"testing"
	"time"
)

func TestCronParse(t *testing.T) {
	for _, ok := range []string{"0 3 * * 0", "*/15 * * * *", "0 9-17/2 * * mon-fri", "0 0 1,15 jan,JUL *", "5 4 * * 7", "0 0 29 2 *", "0-59/30 * * * sun"} {
		if _, err := ParseCron(ok); err != nil {
			t.Errorf("ParseCron(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "* * * *", "* * * * * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "* * * 13 *", "* * * * 8",
		"*/0 * * * *", "5-1 * * * *", "a * * * *", "1,,2 * * * *", "* * * foo *", "@daily"} {
		if _, err := ParseCron(bad); err == nil {
			t.Errorf("ParseCron(%q) accepted", bad)
		}
	}
}

func TestCronNext(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.Parse("2006-01-02 15:04", s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, c := range []struct{ expr, after, want string }{
		{"0 3 * * 0", "2024-01-01 00:00", "2024-01-07 03:00"}, // Monday -> Sunday
		{"*/15 * * * *", "2024-01-01 10:07", "2024-01-01 10:15"},
		{"*/15 * * * *", "2024-01-01 10:45", "2024-01-01 11:00"},
		{"30 9 * * mon-fri", "2024-01-05 10:00", "2024-01-08 09:30"}, // Friday after 9:30 -> Monday
		{"0 0 13 * fri", "2024-01-01 00:00", "2024-01-05 00:00"},     // either day field matches
		{"0 0 29 2 *", "2025-03-01 00:00", "2028-02-29 00:00"},
		{"0 0 1 jan *", "2024-12-31 23:59", "2025-01-01 00:00"},
		{"59 23 31 12 *", "2024-12-31 23:59", "2025-12-31 23:59"}, // strictly after
	} {
		cr, err := ParseCron(c.expr)
		if err != nil {
			t.Fatal(err)
		}
		if got := cr.Next(at(c.after)); !got.Equal(at(c.want)) {
			t.Errorf("%q after %s = %s, want %s", c.expr, c.after, got.Format("2006-01-02 15:04 Mon"), c.want)
		}
	}
	never, _ := ParseCron("0 0 30 2 *")
	if got := never.Next(at("2024-01-01 00:00")); !got.IsZero() {
		t.Errorf("Feb 30 fires at %s", got)
	}
}
