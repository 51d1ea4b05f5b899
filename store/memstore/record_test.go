package memstore

import (
	"math"
	"testing"
	"time"
)

// TestInRange checks the bounds of inRange to the nanosecond, and clamp
// and stamp, which use it.
func TestInRange(t *testing.T) {
	for _, c := range []struct {
		t    time.Time
		want bool
	}{
		{minTime, true},
		{minTime.Add(-time.Nanosecond), false},
		{maxTime, true},
		{maxTime.Add(time.Nanosecond), false},
		{time.Unix(minUnix+1, 0), true},
		{time.Unix(maxUnix-1, 999999999), true},
		{time.Now(), true},
		{time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), false},
		{time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), false},
	} {
		if got := inRange(c.t); got != c.want {
			t.Errorf("inRange(%v) = %v, want %v", c.t, got, c.want)
		}
		if _, err := stamp(c.t, "t"); (err == nil) != c.want {
			t.Errorf("stamp(%v): %v", c.t, err)
		}
		want := c.t.UnixNano()
		if !c.want && c.t.Before(minTime) {
			want = math.MinInt64 + 1
		} else if !c.want {
			want = math.MaxInt64
		}
		if got := clamp(c.t); got != want {
			t.Errorf("clamp(%v) = %d, want %d", c.t, got, want)
		}
	}
}
