//go:build !linux

package alarm

import "time"

type impl struct{ timer timerImpl }

func (a *Alarm) initPrecise() bool { return false }

// Set makes the alarm go off after d, or at once if d is not positive,
// replacing any earlier setting.
func (a *Alarm) Set(d time.Duration) {
	a.drain()
	a.timer.t.Reset(max(d, 0))
}

// Stop releases the alarm.
func (a *Alarm) Stop() { a.timer.t.Stop() }
