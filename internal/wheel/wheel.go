// Package wheel is a hierarchical timing wheel: a set of timers, each due at
// an instant, that the owner fires in time order by advancing the wheel.
//
// Time is cut into ticks of a fixed length, counted from the Unix epoch. A
// timer due at instant w belongs to tick ceil(w/tick), so it is never fired
// early, and at most one tick late if the owner advances at [Wheel.Next].
//
// # Layout
//
// Four levels of slots plus an overflow list, all addressed by the bits of
// the tick number:
//
//	level 0: 256 slots of 1 tick      bits  0..7    256 ticks   (256 ms at 1 ms)
//	level 1:  64 slots of 2^8 ticks   bits  8..13   2^14 ticks  (16.4 s)
//	level 2:  64 slots of 2^14 ticks  bits 14..19   2^20 ticks  (17.5 min)
//	level 3:  64 slots of 2^20 ticks  bits 20..25   2^26 ticks  (18.6 h)
//	overflow: everything further out
//
// A timer sits on the lowest level whose bit range holds the highest bit in
// which its tick differs from the current tick, in the slot named by its own
// bits there. So level 0 holds the rest of the current 256-tick block, level
// 1 the rest of the current 2^14-tick block, and so on; each level is ordered
// by time and every level is later than the one below. When the current tick
// enters the range of an upper slot, that slot's timers are placed again
// (cascaded) and land on lower levels; when it enters a new 2^26-tick block
// the overflow list is placed again. A timer on the levels therefore moves at
// most three times; one in the overflow is looked at again once per 2^26
// ticks until it comes within reach.
//
// 256 one-tick slots keep the next quarter second (at 1 ms) exact without
// cascading, and 64-slot upper levels match one bitmap word each. Four levels
// reach 18.6 hours at the default 1 ms tick, more than the scheduler's
// horizon, so the overflow stays empty in normal use.
//
// Each level keeps an occupancy bitmap, and each list the smallest tick added
// to it, so the next tick with work to do is found in a handful of word
// operations: [Wheel.Next] is O(levels) and [Wheel.Advance] jumps straight to
// the next occupied slot, however far ahead.
//
// # Thread safety
//
// A Wheel is not safe for concurrent use. Its owner (the scheduler) serialises
// every call on the Wheel and on its armed Timers.
package wheel

import (
	"math"
	"math/bits"
	"time"
)

const (
	level0Bits  = 8
	level0Slots = 1 << level0Bits // 256
	upperBits   = 6
	upperSlots  = 1 << upperBits // 64
	upperLevels = 3
	topBits     = level0Bits + upperLevels*upperBits // 26: ticks covered by the levels

	numSlots = level0Slots + upperLevels*upperSlots // 448, numbered level by level

	// Lists after the slots: two due lists (see Wheel.gen) and the overflow.
	listDue      = numSlots
	listOverflow = numSlots + 2
	numLists     = numSlots + 3
)

// Timer is an entry of a Wheel. The caller allocates it (its zero value is an
// unarmed timer) and keeps it; the wheel only links it into its lists, so Add
// and Remove never allocate. A Timer may be armed in one Wheel at a time and
// must not be copied while armed.
type Timer[T any] struct {
	// Value is the caller's payload. The wheel never reads it.
	Value T

	next, prev *Timer[T]
	when       int64  // Unix nanoseconds
	pos        uint16 // 1 + index of the list holding the timer; 0 when not armed
}

// When returns the instant the timer was last armed for, in nanoseconds and
// without a monotonic reading or location. Instants outside the years
// 1678–2262 are clamped to that range.
func (t *Timer[T]) When() time.Time { return time.Unix(0, t.when) }

// Wheel is a hierarchical timing wheel. See the package documentation. Use
// New: the zero Wheel is not usable.
type Wheel[T any] struct {
	tick int64 // nanoseconds
	cur  int64 // current tick; timers due at or before it are in a due list
	n    int

	// Timers armed for a tick at or before cur wait in due list gen until the
	// next Advance, which flips gen before firing the other one: a fire
	// callback that re-arms its timer in the past cannot loop forever.
	gen       int
	advancing bool

	occupied [numSlots / 64]uint64 // bit i set when slot list i is not empty
	heads    [numLists]*Timer[T]
	// mins[i] is a lower bound of the ticks in list i: the smallest tick added
	// since it was last empty. Remove does not raise it.
	mins [numLists]int64
}

// New returns an empty wheel with the given tick length, positioned at now.
// It panics if tick is not positive.
func New[T any](tick time.Duration, now time.Time) *Wheel[T] {
	if tick <= 0 {
		panic("wheel: tick must be positive")
	}
	return &Wheel[T]{tick: int64(tick), cur: floorDiv(unixNano(now), int64(tick))}
}

// Len returns the number of armed timers.
func (w *Wheel[T]) Len() int { return w.n }

// Armed reports whether t is armed: added and neither fired nor removed since.
// A timer that is due in the Advance under way but not yet handed to fire is
// still armed.
func (w *Wheel[T]) Armed(t *Timer[T]) bool { return t.pos != 0 }

// Add arms t to fire at when, in O(1). Adding an armed timer moves it. A timer
// for an instant the wheel has already passed fires at the next Advance.
func (w *Wheel[T]) Add(t *Timer[T], when time.Time) {
	if t.pos != 0 {
		w.unlink(t)
	} else {
		w.n++
	}
	t.when = unixNano(when)
	if tick := w.tickOf(t); tick > w.cur {
		w.place(t, tick)
	} else {
		w.push(listDue+w.gen, t, tick)
	}
}

// Remove disarms t in O(1). It reports false if t was not armed.
func (w *Wheel[T]) Remove(t *Timer[T]) bool {
	if t.pos == 0 {
		return false
	}
	w.unlink(t)
	w.n--
	return true
}

// Advance moves the wheel to now and fires every timer whose tick is at or
// before now, that is every timer with When() <= now once When() is rounded up
// to a multiple of the tick, and never one with When() > now. It also fires
// the timers armed in the past since the last Advance. Each timer is disarmed
// before it is passed to fire, in tick order (any order within a tick).
//
// fire may Add and Remove timers, the fired one included. A timer it arms
// fires in this same call if its tick is after the one being fired and not
// after now, and otherwise in a later Advance. fire must not call Advance. If
// fire panics, the wheel stays consistent and the timers it has not reached
// stay armed.
//
// A now earlier than the wheel's position only fires the timers armed in the
// past. Jumping far ahead costs one step per occupied slot, not per tick.
func (w *Wheel[T]) Advance(now time.Time, fire func(*Timer[T])) {
	if w.advancing {
		panic("wheel: Advance called from its own fire callback")
	}
	w.advancing = true
	defer func() { w.advancing = false }()

	due := listDue + w.gen
	w.gen ^= 1
	w.drain(due, fire)

	target := floorDiv(unixNano(now), w.tick)
	for w.cur < target {
		t, ok := w.earliest()
		if !ok || t > target {
			t = target
		}
		w.moveTo(t)
		w.drain(int(t&(level0Slots-1)), fire)
	}
}

// Next returns the earliest instant at which Advance would fire a timer, and
// false when no timer is armed. It is never later than the earliest armed
// timer's When() rounded up to the tick, and it is that instant exactly,
// except after Remove (or a moving Add) of a timer that was the earliest in
// its upper slot or in the overflow: Next may then still report the removed
// timer's tick, where Advance fires nothing but cascades the slot, after which
// Next is exact again. So each such Remove costs the driver at most one
// needless wake-up, where recomputing the minimum would make Remove or Next
// O(timers in the slot). A result before the last Advance means "now".
// Next is O(levels).
func (w *Wheel[T]) Next() (time.Time, bool) {
	tick, ok := w.earliest()
	for _, due := range [...]int{listDue, listDue + 1} {
		if w.heads[due] != nil && (!ok || w.mins[due] < tick) {
			tick, ok = w.mins[due], true
		}
	}
	if !ok {
		return time.Time{}, false
	}
	switch {
	case tick > math.MaxInt64/w.tick:
		return time.Unix(0, math.MaxInt64), true
	case tick < math.MinInt64/w.tick:
		return time.Unix(0, math.MinInt64), true
	}
	return time.Unix(0, tick*w.tick), true
}

// earliest returns the first tick after cur at which the wheel has work to
// do: fire a level-0 slot, cascade an upper slot or re-place the overflow. It
// ignores the due lists. Because the levels are ordered in time and stored in
// that order in occupied, the first occupied slot is the answer: its tick on
// level 0, its list's minimum above.
func (w *Wheel[T]) earliest() (int64, bool) {
	for i, word := range w.occupied {
		if word == 0 {
			continue
		}
		slot := i*64 + bits.TrailingZeros64(word)
		if slot < level0Slots {
			return w.cur&^(level0Slots-1) | int64(slot), true
		}
		return w.mins[slot], true
	}
	if w.heads[listOverflow] != nil {
		return w.mins[listOverflow], true
	}
	return 0, false
}

// moveTo sets the current tick to t, which must not pass any tick returned by
// earliest, and cascades the upper slots (and the overflow) whose range t has
// entered. Their timers are all at or after t and land on lower levels.
func (w *Wheel[T]) moveTo(t int64) {
	old := w.cur
	w.cur = t
	if old>>topBits != t>>topBits {
		w.replace(listOverflow)
	}
	for l := upperLevels - 1; l >= 0; l-- {
		shift := level0Bits + l*upperBits
		if old>>shift != t>>shift {
			w.replace(level0Slots + l*upperSlots + int(t>>shift&(upperSlots-1)))
		}
	}
}

// replace empties list i and places each of its timers again.
func (w *Wheel[T]) replace(i int) {
	t := w.heads[i]
	if t == nil {
		return
	}
	w.heads[i] = nil
	if i < numSlots {
		w.occupied[i/64] &^= 1 << (i % 64)
	}
	for t != nil {
		next := t.next
		w.place(t, w.tickOf(t))
		t = next
	}
}

// drain disarms and fires the timers of list i until it is empty.
func (w *Wheel[T]) drain(i int, fire func(*Timer[T])) {
	for t := w.heads[i]; t != nil; t = w.heads[i] {
		w.unlink(t)
		w.n--
		fire(t)
	}
}

// place links t, due at tick >= cur, into the list it belongs to.
func (w *Wheel[T]) place(t *Timer[T], tick int64) {
	x := uint64(tick ^ w.cur)
	switch {
	case x < level0Slots:
		w.push(int(tick&(level0Slots-1)), t, tick)
	case x < 1<<topBits:
		l := (bits.Len64(x) - level0Bits - 1) / upperBits // upper level 0..2
		shift := level0Bits + l*upperBits
		w.push(level0Slots+l*upperSlots+int(tick>>shift&(upperSlots-1)), t, tick)
	default:
		w.push(listOverflow, t, tick)
	}
}

// push links t at the head of list i.
func (w *Wheel[T]) push(i int, t *Timer[T], tick int64) {
	h := w.heads[i]
	if h == nil {
		w.mins[i] = tick
		if i < numSlots {
			w.occupied[i/64] |= 1 << (i % 64)
		}
	} else {
		h.prev = t
		w.mins[i] = min(w.mins[i], tick)
	}
	t.next, t.prev, t.pos = h, nil, uint16(i+1)
	w.heads[i] = t
}

// unlink takes the armed timer t out of its list and disarms it.
func (w *Wheel[T]) unlink(t *Timer[T]) {
	i := int(t.pos) - 1
	if t.prev != nil {
		t.prev.next = t.next
	} else {
		w.heads[i] = t.next
		if t.next == nil && i < numSlots {
			w.occupied[i/64] &^= 1 << (i % 64)
		}
	}
	if t.next != nil {
		t.next.prev = t.prev
	}
	t.next, t.prev, t.pos = nil, nil, 0
}

// tickOf returns the first tick at or after t's instant.
func (w *Wheel[T]) tickOf(t *Timer[T]) int64 {
	q := t.when / w.tick
	if t.when%w.tick > 0 {
		q++
	}
	return q
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b < 0 {
		q--
	}
	return q
}

var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

// unixNano is t.UnixNano clamped to the int64 range instead of undefined
// outside it (the zero time.Time is such an instant).
func unixNano(t time.Time) int64 {
	if s := t.Unix(); s > -9e9 && s < 9e9 { // about 1684 to 2255
		return t.UnixNano()
	}
	switch {
	case t.Before(minTime):
		return math.MinInt64
	case t.After(maxTime):
		return math.MaxInt64
	}
	return t.UnixNano()
}
