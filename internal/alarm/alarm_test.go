package alarm

import (
	"runtime"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestGoesOffNotBefore sets real alarms and checks that each goes off, never
// before its time.
func TestGoesOffNotBefore(t *testing.T) {
	a := New()
	defer a.Stop()
	if runtime.GOOS == "linux" && a.timer != nil {
		t.Fatal("on Linux outside a bubble, New made a runtime timer, not a timerfd")
	}
	for _, d := range []time.Duration{0, time.Microsecond, 300 * time.Microsecond, 5 * time.Millisecond} {
		start := time.Now()
		a.Set(d)
		select {
		case <-a.C:
		case <-time.After(time.Second):
			t.Fatalf("Set(%v): no signal after a second", d)
		}
		if took := time.Since(start); took < d {
			t.Fatalf("Set(%v): went off after %v, early", d, took)
		}
	}
}

// TestSetReplaces checks that a new setting replaces the one before, in
// both directions.
func TestSetReplaces(t *testing.T) {
	a := New()
	defer a.Stop()
	a.Set(time.Hour)
	a.Set(time.Millisecond)
	select {
	case <-a.C:
	case <-time.After(time.Second):
		t.Fatal("an alarm moved from an hour to a millisecond did not go off")
	}
	a.Set(time.Millisecond)
	a.Set(time.Hour)
	select {
	case <-a.C:
		t.Fatal("an alarm moved from a millisecond to an hour went off")
	case <-time.After(20 * time.Millisecond):
	}
}

// TestFakeClock checks that inside a synctest bubble the alarm runs on the
// runtime's timers, which the bubble's fake clock drives.
func TestFakeClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := New()
		defer a.Stop()
		a.Set(time.Hour)
		time.Sleep(time.Hour - time.Nanosecond)
		select {
		case <-a.C:
			t.Fatal("went off before its hour")
		default:
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		select {
		case <-a.C:
		default:
			t.Fatal("did not go off at its hour")
		}
	})
}
