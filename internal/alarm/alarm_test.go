package alarm

import (
	"runtime"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// wait runs a.Wait in a goroutine and returns a channel that receives what
// it returned.
func wait(a *Alarm) <-chan bool {
	c := make(chan bool, 1)
	go func() { c <- a.Wait() }()
	return c
}

// TestGoesOffNotBefore sets real alarms and checks that each goes off, never
// before its time.
func TestGoesOffNotBefore(t *testing.T) {
	a := New()
	defer a.Stop()
	if runtime.GOOS == "linux" && a.f == nil {
		t.Fatal("on Linux outside a bubble, New made a runtime timer, not a timerfd")
	}
	for _, d := range []time.Duration{0, time.Microsecond, 300 * time.Microsecond, 5 * time.Millisecond} {
		start := time.Now()
		a.Set(d)
		select {
		case ok := <-wait(a):
			if !ok {
				t.Fatalf("Set(%v): Wait returned false before Stop", d)
			}
		case <-time.After(time.Second):
			t.Fatalf("Set(%v): did not go off within a second", d)
		}
		if took := time.Since(start); took < d {
			t.Fatalf("Set(%v): went off after %v, early", d, took)
		}
	}
}

// TestSetReplaces checks that a new setting replaces the one before, in
// both directions, and that Wake ends a Wait at once.
func TestSetReplaces(t *testing.T) {
	a := New()
	defer a.Stop()
	a.Set(time.Hour)
	a.Set(time.Millisecond)
	select {
	case <-wait(a):
	case <-time.After(time.Second):
		t.Fatal("an alarm moved from an hour to a millisecond did not go off")
	}
	a.Set(time.Millisecond)
	a.Set(time.Hour)
	w := wait(a)
	select {
	case <-w:
		t.Fatal("an alarm moved from a millisecond to an hour went off")
	case <-time.After(20 * time.Millisecond):
	}
	a.Wake()
	select {
	case ok := <-w:
		if !ok {
			t.Fatal("Wait returned false after Wake, before Stop")
		}
	case <-time.After(time.Second):
		t.Fatal("Wake did not end the Wait")
	}
}

// TestStop checks that Stop ends a Wait in progress with false, and that
// Wake and Set after Stop do nothing.
func TestStop(t *testing.T) {
	a := New()
	a.Set(time.Hour)
	w := wait(a)
	a.Stop()
	select {
	case ok := <-w:
		if ok {
			t.Fatal("Wait returned true after Stop")
		}
	case <-time.After(time.Second):
		t.Fatal("Stop did not end the Wait")
	}
	a.Wake()
	a.Set(time.Millisecond)
	if a.Wait() {
		t.Fatal("Wait after Stop returned true")
	}
}

// TestFakeClock checks that inside a synctest bubble the alarm runs on the
// runtime's timers, which the bubble's fake clock drives.
func TestFakeClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := New()
		defer a.Stop()
		a.Set(time.Hour)
		w := wait(a)
		time.Sleep(time.Hour - time.Nanosecond)
		synctest.Wait()
		select {
		case <-w:
			t.Fatal("went off before its hour")
		default:
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		select {
		case <-w:
		default:
			t.Fatal("did not go off at its hour")
		}
	})
}
