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
// the tick number. Each level is a ring of two blocks: the block holding the
// current tick and the one after it.
//
//	level 0: 2×256 slots of 1 tick      block of 2^8 ticks   (256 ms at 1 ms)
//	level 1: 2×64 slots of 2^8 ticks    block of 2^14 ticks  (16.4 s)
//	level 2: 2×64 slots of 2^14 ticks   block of 2^20 ticks  (17.5 min)
//	level 3: 2×64 slots of 2^20 ticks   block of 2^26 ticks  (18.6 h)
//	overflow: everything further out
//
// A timer is placed on the lowest level whose current or next block holds
// its tick, in the slot named by its own bits there. A timer on level l+1 is
// therefore at least one level-l block ahead of the current tick.
//
// # Cascading without stalls
//
// A timer on an upper level must move down before its tick is reached. A
// classic wheel moves a whole upper slot at once, when the current tick
// enters its range: with a million timers due over the next ten seconds,
// one such cascade moves hundreds of thousands of them while the timers
// already due wait. Here the slot for the next lower-level block is moved
// down bit by bit while the current block runs (its timers fit on the lower
// level, whose ring has room for the next block): each Advance moves a share
// proportional to the ticks it covered, and Next asks for extra wake-ups when
// a large slot is pending, so a slot is empty by the time its block starts.
// What is left then (timers added late, or a driver that did not call) moves
// at once. A timer on the levels moves at most three times; one in the
// overflow is looked at again once per 2^26 ticks until it comes within
// reach.
//
// Each level keeps occupancy bitmaps and each list the smallest tick added to
// it and its length, so the next tick with work to do is found in a handful
// of word operations: [Wheel.Next] is O(levels) and [Wheel.Advance] jumps
// straight to the next occupied slot, however far ahead. Four levels reach
// 18.6 hours at the default 1 ms tick, more than the scheduler's horizon, so
// the overflow stays empty in normal use.
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
	level0Slots = 2 << level0Bits // 512: two blocks of 256 ticks
	upperBits   = 6
	upperSlots  = 2 << upperBits // 128: two blocks of 64 slots
	upperLevels = 3
	topBits     = level0Bits + upperLevels*upperBits // 26: a level-3 block

	numSlots = level0Slots + upperLevels*upperSlots // 896, numbered level by level

	// Lists after the slots: two due lists (see Wheel.gen), the overflow, and
	// the timers of the next tick that Advance is about to fire.
	listDue      = numSlots
	listOverflow = numSlots + 2
	listEarly    = numSlots + 3
	numLists     = numSlots + 4

	// precascadeBatch is about how many timers one Advance moves down from a
	// pending upper slot: Next asks to be called often enough for that.
	precascadeBatch = 256
)

// levelBase returns the first list of level l; slotShift and blockShift the
// bits of a tick that name its slot and its block on level l.
func levelBase(l int) int {
	if l == 0 {
		return 0
	}
	return level0Slots + (l-1)*upperSlots
}

func slotShift(l int) uint {
	if l == 0 {
		return 0
	}
	return uint(level0Bits + (l-1)*upperBits)
}

func blockShift(l int) uint { return uint(level0Bits + l*upperBits) }

func ringMask(l int) int64 {
	if l == 0 {
		return level0Slots - 1
	}
	return upperSlots - 1
}

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
	// moved is the tick at which Advance last moved timers down ahead of
	// time; moves counts the timers moved down, for tests.
	moved int64
	moves int

	occupied [numSlots / 64]uint64 // bit i set when slot list i is not empty
	heads    [numLists]*Timer[T]
	// mins[i] is a lower bound of the ticks in list i: the smallest tick added
	// since it was last empty. Remove does not raise it.
	mins [numLists]int64
	lens [numLists]int32
	// whens[i] is a lower bound of the instants (Unix nanoseconds) of the
	// timers in level-0 slot i, so that Next can name the instant within a
	// tick, and Advance fire a timer at its instant rather than at the end
	// of its tick.
	whens [level0Slots]int64
}

// New returns an empty wheel with the given tick length, positioned at now.
// It panics if tick is not positive.
func New[T any](tick time.Duration, now time.Time) *Wheel[T] {
	if tick <= 0 {
		panic("wheel: tick must be positive")
	}
	cur := floorDiv(unixNano(now), int64(tick))
	return &Wheel[T]{tick: int64(tick), cur: cur, moved: cur}
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

// Advance moves the wheel to now and fires every timer with When() <= now,
// and never one with When() > now. It also fires
// the timers armed in the past since the last Advance. Each timer is disarmed
// before it is passed to fire, in tick order (any order within a tick). Then
// it moves down a share of the timers of the upper slots whose blocks come
// next (see the package documentation).
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
	w.fireEarly(unixNano(now), fire)
	w.precascade()
}

// fireEarly fires the timers of the next tick whose instant is at or before
// now: a tick is the granularity of the slots, not of the firing. It moves
// them to a list of their own before firing any, so that fire may change
// the slot, and leaves the slot's whens exact.
func (w *Wheel[T]) fireEarly(now int64, fire func(*Timer[T])) {
	i := int((w.cur + 1) & (level0Slots - 1))
	if w.heads[i] == nil || w.whens[i] > now {
		return
	}
	rest := int64(math.MaxInt64)
	for t := w.heads[i]; t != nil; {
		next := t.next
		if t.when <= now {
			w.unlink(t)
			w.push(listEarly, t, w.cur+1)
		} else {
			rest = min(rest, t.when)
		}
		t = next
	}
	w.whens[i] = rest
	w.drain(listEarly, fire)
}

// Next returns the earliest instant at which the wheel wants Advance to be
// called, and false when no timer is armed. That is the earliest armed
// timer's When() when the timer is on level 0 (the coming 256 to 512
// ticks), that instant rounded up to the tick on the upper levels, or
// earlier: when a large upper slot
// is being moved down ahead of its block, Next asks for an Advance every few
// ticks so that the move is spread out. After Remove (or a moving Add) of a
// timer that was the earliest in its upper slot or in the overflow, Next may
// also still report the removed timer's tick, where Advance fires nothing;
// it is exact again after that Advance. So each such Remove costs the driver
// at most one needless wake-up, where recomputing the minimum would make
// Remove or Next O(timers in the slot). A result before the last Advance
// means "now". Next is O(levels).
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
	for l := 1; l <= upperLevels; l++ {
		if want, ok := w.spread(l); ok {
			tick = min(tick, want)
		}
	}
	switch {
	case tick > math.MaxInt64/w.tick:
		return time.Unix(0, math.MaxInt64), true
	case tick < math.MinInt64/w.tick:
		return time.Unix(0, math.MinInt64), true
	}
	at := tick * w.tick
	if i := int(tick & (level0Slots - 1)); tick > w.cur && w.heads[i] != nil && w.mins[i] == tick {
		at = max(w.whens[i], at-w.tick+1) // the first instant in the tick
	}
	return time.Unix(0, at), true
}

// earliest returns a lower bound of the first tick after cur at which the
// wheel has a timer, ignoring the due lists: the first occupied slot of each
// ring, read from the current tick on, holds the earliest timers of its
// level; the answer is the smallest of them.
func (w *Wheel[T]) earliest() (int64, bool) {
	best, ok := int64(0), false
	if p, found := firstSet(w.occupied[:level0Slots/64], int(w.cur&(level0Slots-1))); found {
		best, ok = w.cur+int64(p-int(w.cur&(level0Slots-1)))&(level0Slots-1), true
	}
	for l := 1; l <= upperLevels; l++ {
		base := levelBase(l)
		words := w.occupied[base/64 : (base+upperSlots)/64]
		if p, found := firstSet(words, int(w.cur>>slotShift(l)&(upperSlots-1))); found {
			if m := w.mins[base+p]; !ok || m < best {
				best, ok = m, true
			}
		}
	}
	if w.heads[listOverflow] != nil && (!ok || w.mins[listOverflow] < best) {
		best, ok = w.mins[listOverflow], true
	}
	return best, ok
}

// spread returns when the wheel wants an Advance to spread the move of the
// first occupied slot of upper level l over the block before the slot's
// own: at the start of that block, then every few ticks. It reports false
// for a slot small enough to move at once.
func (w *Wheel[T]) spread(l int) (int64, bool) {
	base := levelBase(l)
	words := w.occupied[base/64 : (base+upperSlots)/64]
	p, found := firstSet(words, int(w.cur>>slotShift(l)&(upperSlots-1)))
	if !found {
		return 0, false
	}
	n := int64(w.lens[base+p])
	if n <= precascadeBatch {
		return 0, false
	}
	bs := slotShift(l)
	block := w.mins[base+p] >> bs // the lower-level block of the slot's timers
	if block > math.MaxInt64>>bs {
		return 0, false
	}
	if start := (block - 1) << bs; start > w.cur {
		return start, true
	}
	left := block<<bs - w.cur
	return w.cur + max(1, left*precascadeBatch/n), true
}

// firstSet returns the first set bit of words, read as a ring starting at
// bit start.
func firstSet(words []uint64, start int) (int, bool) {
	i, off := start/64, uint(start%64)
	if x := words[i] >> off << off; x != 0 {
		return i*64 + bits.TrailingZeros64(x), true
	}
	for j := 1; j < len(words); j++ {
		k := (i + j) % len(words)
		if words[k] != 0 {
			return k*64 + bits.TrailingZeros64(words[k]), true
		}
	}
	if x := words[i] & (1<<off - 1); x != 0 {
		return i*64 + bits.TrailingZeros64(x), true
	}
	return 0, false
}

// moveTo sets the current tick to t, which must not pass any tick returned by
// earliest, and moves down at once whatever is left in the upper slots (and
// the overflow) whose block t has entered. Their timers are all at or after
// t and land on lower levels.
func (w *Wheel[T]) moveTo(t int64) {
	old := w.cur
	w.cur = t
	if old>>topBits != t>>topBits {
		w.replace(listOverflow)
	}
	for l := upperLevels - 1; l >= 0; l-- {
		bs := blockShift(l)
		if old>>bs != t>>bs {
			w.replace(levelBase(l+1) + int(t>>bs&(upperSlots-1)))
		}
	}
}

// pending returns the slot of level l (1..3) that holds timers of the next
// level l-1 block, and how many ticks are left before that block starts.
func (w *Wheel[T]) pending(l int) (slot int, left int64) {
	bs := blockShift(l - 1)
	next := w.cur>>bs + 1
	return levelBase(l) + int(next&(upperSlots-1)), next<<bs - w.cur
}

// precascade moves down a share of each pending upper slot: the share of the
// ticks left before its block starts that the wheel moved through since the
// last call (within the current block), so that the slot is empty by then.
func (w *Wheel[T]) precascade() {
	last := w.moved
	w.moved = w.cur
	for l := 1; l <= upperLevels; l++ {
		i, left := w.pending(l)
		n := int64(w.lens[i])
		if n == 0 || left <= 0 {
			continue // left <= 0: the block start overflows; far out of reach
		}
		blockStart := w.cur >> blockShift(l-1) << blockShift(l-1)
		moved := max(w.cur-max(last, blockStart), 1)
		k := n
		if moved < left {
			k = min(n, max((n*moved+left-1)/left, precascadeBatch/4))
		}
		w.moves += int(k)
		for ; k > 0; k-- {
			t := w.heads[i]
			w.unlink(t)
			w.place(t, w.tickOf(t))
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
	w.moves += int(w.lens[i])
	w.lens[i] = 0
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

// place links t, due at tick > cur, into the list it belongs to: the lowest
// level whose current or next block holds tick.
func (w *Wheel[T]) place(t *Timer[T], tick int64) {
	for l := 0; l <= upperLevels; l++ {
		if bs := blockShift(l); tick>>bs-w.cur>>bs <= 1 {
			w.push(levelBase(l)+int(tick>>slotShift(l)&ringMask(l)), t, tick)
			return
		}
	}
	w.push(listOverflow, t, tick)
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
	if i < level0Slots {
		if h == nil || t.when < w.whens[i] {
			w.whens[i] = t.when
		}
	}
	t.next, t.prev, t.pos = h, nil, uint16(i+1)
	w.heads[i] = t
	w.lens[i]++
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
	w.lens[i]--
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
