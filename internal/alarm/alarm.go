// Package alarm wakes a goroutine at an instant, to the microsecond where
// the platform allows.
//
// The Go runtime's timers are late by up to a millisecond (half of one on
// average) whenever the process is idle on Linux: the runtime then sleeps
// in epoll_wait, whose timeout counts milliseconds. And while a garbage
// collection marks, a processor with nothing to run runs the collector's
// idle worker, which yields to runnable goroutines and to network events
// but does not look at timers: a timer due on that processor waits until
// the worker is preempted, up to 10 ms later. The scheduler's wheel driver
// sleeps until the next trigger is due, so both show in every trigger's
// lateness.
//
// On Linux an Alarm is therefore a timerfd read through the runtime's
// network poller: the kernel wakes the poller at the instant, and the
// collector's idle worker yields to it like to any network event.
// Elsewhere, when a timerfd cannot be made, and inside a testing/synctest
// bubble (whose fake clock only drives the runtime's timers; see fakeClock), an
// Alarm is a runtime timer.
package alarm

import "time"

// Alarm signals on C when it goes off. Make one with New, set it with Set,
// and release it with Stop.
type Alarm struct {
	// C receives a value when the alarm goes off. A value may also be left
	// from a setting that Set replaced: a receiver checks the clock.
	C     <-chan struct{}
	c     chan struct{}
	timer *time.Timer // the runtime-timer alarm, when there is no precise one
	impl              // the precise alarm, where the platform has one
}

// New returns an alarm that is not set. It never fails: without a timerfd
// it falls back to a runtime timer.
func New() *Alarm {
	c := make(chan struct{}, 1)
	a := &Alarm{C: c, c: c}
	if !fakeClock() && a.initPrecise() {
		return a
	}
	a.initTimer()
	return a
}

// fakeClock reports whether the clock looks like the fake one of a
// testing/synctest bubble, which starts at midnight UTC on 1 January 2000:
// a goroutine reading a timerfd is not durably blocked, so a bubble's clock
// would never advance past it. Real clocks are long past 2000.
func fakeClock() bool { return time.Now().Year() <= 2000 }

// signal makes C ready unless it is already.
func (a *Alarm) signal() {
	select {
	case a.c <- struct{}{}:
	default:
	}
}

// drain empties C of a signal left from an earlier setting.
func (a *Alarm) drain() {
	select {
	case <-a.c:
	default:
	}
}

func (a *Alarm) initTimer() {
	a.timer = time.AfterFunc(time.Hour, a.signal)
	a.timer.Stop()
}

// Set makes the alarm go off after d, or at once if d is not positive,
// replacing any earlier setting.
func (a *Alarm) Set(d time.Duration) {
	a.drain()
	if !a.setPrecise(d) {
		a.timer.Reset(d)
	}
}

// Stop releases the alarm and returns once nothing of it runs any more.
func (a *Alarm) Stop() {
	if !a.stopPrecise() {
		a.timer.Stop()
	}
}
