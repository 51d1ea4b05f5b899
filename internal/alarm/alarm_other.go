//go:build !linux

package alarm

import "time"

// impl is empty: the runtime timer is the only alarm here.
type impl struct{}

func (a *Alarm) initPrecise() bool               { return false }
func (a *Alarm) waitPrecise() (ok, precise bool) { return false, false }
func (a *Alarm) setPrecise(time.Duration) bool   { return false }
func (a *Alarm) stopPrecise() bool               { return false }
