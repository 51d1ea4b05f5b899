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
// On Linux an Alarm is therefore a timerfd, which the waiting goroutine
// reads through the runtime's network poller: the kernel wakes the poller
// at the instant, the collector's idle worker yields to it like to any
// network event, and the poller readies the waiting goroutine itself. (A
// goroutine of the alarm's own that read the timerfd and passed the news
// on would make each alarm cost a second wake-up: at ten thousand alarms
// a second that was a fifth of the scheduler's processor time.) Elsewhere,
// when a timerfd cannot be made, and inside a testing/synctest bubble
// (whose fake clock only drives the runtime's timers; see fakeClock), an
// Alarm is a runtime timer.
package alarm

import "time"

// Alarm wakes one goroutine, which waits in Wait. Make one with New, set it
// with Set, and release it with Stop. Set and Wait are for the waiting
// goroutine; Wake and Stop may be called from any.
type Alarm struct {
	c     chan struct{} // the runtime-timer alarm's: ready when it went off
	done  chan struct{} // the runtime-timer alarm's: closed by Stop
	timer *time.Timer   // the runtime-timer alarm, when there is no precise one
	impl                // the precise alarm, where the platform has one
}

// New returns an alarm that is not set. It never fails: without a timerfd
// it falls back to a runtime timer.
func New() *Alarm {
	a := &Alarm{}
	if !fakeClock() && a.initPrecise() {
		return a
	}
	a.c, a.done = make(chan struct{}, 1), make(chan struct{})
	a.timer = time.AfterFunc(time.Hour, a.signal)
	a.timer.Stop()
	return a
}

// fakeClock reports whether the clock looks like the fake one of a
// testing/synctest bubble, which starts at midnight UTC on 1 January 2000:
// a goroutine reading a timerfd is not durably blocked, so a bubble's clock
// would never advance past it. Real clocks are long past 2000.
func fakeClock() bool { return time.Now().Year() <= 2000 }

// signal makes the runtime-timer alarm's Wait return, unless it already
// would.
func (a *Alarm) signal() {
	select {
	case a.c <- struct{}{}:
	default:
	}
}

// Set makes the alarm go off after d, or at once if d is not positive,
// replacing any earlier setting. A Wake or a setting that went off since
// the last Wait returned may still end the next Wait at once: the waiter
// checks why it woke.
func (a *Alarm) Set(d time.Duration) {
	if !a.setPrecise(d) {
		a.timer.Reset(d)
	}
}

// Wait blocks until the alarm goes off or Wake is called, and reports
// false once Stop has been called.
func (a *Alarm) Wait() bool {
	if ok, precise := a.waitPrecise(); precise {
		return ok
	}
	select {
	case <-a.c:
		return true
	case <-a.done:
		return false
	}
}

// Wake makes the alarm go off now: a Wait in progress returns, or the next
// one does at once.
func (a *Alarm) Wake() {
	if !a.setPrecise(0) {
		a.signal()
	}
}

// Stop releases the alarm: a Wait in progress returns false, as every
// later one does. Call it once.
func (a *Alarm) Stop() {
	if !a.stopPrecise() {
		a.timer.Stop()
		close(a.done)
	}
}
