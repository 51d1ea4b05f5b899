package alarm

import (
	"os"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

type impl struct {
	// f is the timerfd, read through the network poller; nil when the
	// runtime timer is used.
	f  *os.File
	rc syscall.RawConn // f's, to set the timerfd while f cannot be closed
}

// initPrecise makes the timerfd, and reports whether it could.
func (a *Alarm) initPrecise() bool {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return false
	}
	a.f = os.NewFile(uintptr(fd), "alarm")
	if a.rc, err = a.f.SyscallConn(); err != nil {
		a.f.Close()
		a.f = nil
		return false
	}
	return true
}

// waitPrecise reads the timerfd, parked in the network poller until it
// expires, and reports whether it did (false once Stop closed it) and
// whether there is a timerfd. The read cannot block (the timerfd is
// non-blocking), so it is a raw system call: one through the runtime's
// syscall path wakes its monitor thread when that sleeps, a futex call
// per alarm.
func (a *Alarm) waitPrecise() (ok, precise bool) {
	if a.f == nil {
		return false, false
	}
	var buf [8]byte // the count of expirations, which does not matter
	err := a.rc.Read(func(fd uintptr) bool {
		_, _, e := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)))
		return e != unix.EAGAIN // woken early by anything else: the waiter checks why
	})
	return err == nil, true
}

// setPrecise sets the timerfd to go off after d, and reports false if
// there is none. Once Stop has closed it, setting it does nothing: the
// RawConn keeps it open while it is set, so a descriptor number reused
// since is never touched.
func (a *Alarm) setPrecise(d time.Duration) bool {
	if a.f == nil {
		return false
	}
	// A zero it_value disarms a timerfd: at once is a nanosecond.
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(max(int64(d), 1))}
	a.rc.Control(func(fd uintptr) {
		// It fails only for a descriptor that is not a timerfd, which
		// Control rules out.
		unix.TimerfdSettime(int(fd), 0, &spec, nil)
	})
	return true
}

// stopPrecise closes the timerfd, which ends a Read in progress, and
// reports false if there is none.
func (a *Alarm) stopPrecise() bool {
	if a.f == nil {
		return false
	}
	a.f.Close()
	return true
}
