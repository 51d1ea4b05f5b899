package alarm

import (
	"os"
	"time"

	"golang.org/x/sys/unix"
)

type impl struct {
	// f is the timerfd, read through the network poller; nil when the
	// runtime timer is used.
	f    *os.File
	fd   int           // f's descriptor, for timerfd_settime (f.Fd would make f blocking)
	done chan struct{} // closed when read returns
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

// setPrecise sets the timerfd to go off after d, and reports false if
// there is none.
func (a *Alarm) setPrecise(d time.Duration) bool {
	if a.f == nil {
		return false
	}
	// A zero it_value disarms a timerfd: at once is a nanosecond.
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(max(int64(d), 1))}
	if err := unix.TimerfdSettime(a.fd, 0, &spec, nil); err != nil {
		a.signal() // cannot happen with a valid fd; wake rather than oversleep
	}
	return true
}

// stopPrecise closes the timerfd and waits for its reader, and reports
// false if there is none.
func (a *Alarm) stopPrecise() bool {
	if a.f == nil {
		return false
	}
	a.f.Close()
	<-a.done
	return true
}
