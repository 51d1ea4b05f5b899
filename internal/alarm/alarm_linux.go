package alarm

import (
	"os"
	"time"

	"golang.org/x/sys/unix"
)

type impl struct {
	timer timerImpl
	f     *os.File      // the timerfd, read through the network poller; nil when the runtime timer is used
	fd    int           // f's descriptor, for timerfd_settime (f.Fd would make f blocking)
	done  chan struct{} // closed when read returns
}

// initPrecise makes the timerfd and the goroutine that reads it, and
// reports whether it could.
func (a *Alarm) initPrecise() bool {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return false
	}
	a.fd, a.f, a.done = fd, os.NewFile(uintptr(fd), "alarm"), make(chan struct{})
	go a.read()
	return true
}

// read signals C each time the timerfd expires, until Stop closes it.
func (a *Alarm) read() {
	defer close(a.done)
	var buf [8]byte // the count of expirations, which does not matter
	for {
		if _, err := a.f.Read(buf[:]); err != nil {
			return
		}
		a.signal()
	}
}

// Set makes the alarm go off after d, or at once if d is not positive,
// replacing any earlier setting.
func (a *Alarm) Set(d time.Duration) {
	a.drain()
	if a.f == nil {
		a.timer.t.Reset(max(d, 0))
		return
	}
	// A zero it_value disarms a timerfd: at once is a nanosecond.
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(max(int64(d), 1))}
	if err := unix.TimerfdSettime(a.fd, 0, &spec, nil); err != nil {
		a.signal() // cannot happen with a valid fd; wake rather than oversleep
	}
}

// Stop releases the alarm and returns once nothing of it runs any more.
func (a *Alarm) Stop() {
	if a.f == nil {
		a.timer.t.Stop()
		return
	}
	a.f.Close()
	<-a.done
}
