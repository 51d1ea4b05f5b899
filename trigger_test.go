package trigger

import (
	"testing"
	"time"
)

// TestDueInRange checks the bounds of dueInRange to the nanosecond, and
// against Before, whose work it saves.
func TestDueInRange(t *testing.T) {
	for _, c := range []struct {
		t    time.Time
		want bool
	}{
		{minDue, true},
		{minDue.Add(-time.Nanosecond), false},
		{minDue.Add(-time.Second), false},
		{maxDue.Add(-time.Nanosecond), true},
		{maxDue, false},
		{maxDue.Add(time.Nanosecond), false},
		{time.Now(), true},
		{time.Date(1969, 12, 31, 23, 59, 59, 999999999, time.UTC), false},
		{time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), false},
		{time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), false},
	} {
		if got := dueInRange(c.t); got != c.want {
			t.Errorf("dueInRange(%v) = %v, want %v", c.t, got, c.want)
		}
		if exact := !c.t.Before(minDue) && c.t.Before(maxDue); exact != c.want {
			t.Errorf("case %v: Before says %v", c.t, exact)
		}
	}
}
