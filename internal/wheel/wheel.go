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
// # Storage
//
// The wheel keeps the timers itself, in nodes of the value and 12 bytes of
// bookkeeping (40 bytes with padding for a 24-byte value). A timer cannot be
// removed once added: it stays armed until it fires, so the owner must make a
// stale timer harmless when it fires (the scheduler's claim of a stale timer
// fails). Nodes live in chunks of 1024 that never move once allocated, and
// link to each other by index, so the chunks hold no Go pointers besides those
// inside the values: the garbage collector sees one large object per 1024
// timers instead of one object per timer, and nothing to scan for a
// pointer-free T. Add takes a node from a free list (allocating a chunk only
// when no node is free) and pushes it at the head of a singly linked list,
// writing the node and the list's head but no neighbour: Add is O(1).
// Whenever no timer is left armed, the wheel drops every chunk but the first,
// so that a burst of a million timers does not pin their memory.
//
// # Thread safety
//
// A Wheel is not safe for concurrent use. Its owner (the scheduler) serialises
// every call on it.
package wheel

import (
	"cmp"
	"math"
	"math/bits"
	"slices"
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
	// the timers of the next tick that Advance is about to fire (left there,
	// already due, if a fire callback panics; the next Advance fires them).
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

const (
	chunkBits = 10
	chunkSize = 1 << chunkBits // nodes per chunk
)

// node holds a timer while it is armed. Nodes link to each other by index, so
// the chunks hold no Go pointers besides those in the values.
type node[T any] struct {
	v    T
	when int64  // Unix nanoseconds
	next uint32 // next node of its list, or of the free list; 0 ends a list
}

// Wheel is a hierarchical timing wheel. See the package documentation. Use
// New: the zero Wheel is not usable.
type Wheel[T any] struct {
	tick int64 // nanoseconds
	cur  int64 // current tick; timers due at or before it are in a due list
	n    int   // armed timers

	// Timers armed for a tick at or before cur wait in due list gen until the
	// next Advance, which flips gen before firing the other one: a fire
	// callback that re-arms its timer in the past cannot loop forever.
	gen       int
	advancing bool
	// moved is the tick at which Advance last moved timers down ahead of
	// time; moves counts the timers moved down, for tests.
	moved int64
	moves int

	// chunks hold the nodes, node i at chunks[i>>chunkBits][i%chunkSize].
	// Node 0 is never used, so that index 0 ends a list. The nodes from top
	// on have never been used since the wheel was last empty; free is the
	// first of the others that are free.
	chunks []*[chunkSize]node[T]
	free   uint32
	top    uint32

	// occupied has bit i set when slot list i has timers.
	occupied [numSlots / 64]uint64
	heads    [numLists]uint32
	// mins[i] is a lower bound of the ticks of the timers in list i: the
	// smallest tick added since it last held none.
	mins [numLists]int64
	lens [numLists]int32 // timers in each list
	// whens[i] is a lower bound of the instants (Unix nanoseconds) of the
	// timers in level-0 slot i, so that Next can name the instant within a
	// tick, and Advance fire a timer at its instant rather than at the end
	// of its tick.
	whens [level0Slots]int64
	// sorted is a level-0 slot whose list is in order of instant, so that
	// whens holds its head's (see fireEarly), or -1; scratch is sortSlot's.
	sorted  int
	scratch []timer
}

// timer is a node's instant and index, as sortSlot sorts them.
type timer struct {
	when int64
	i    uint32
}

// New returns an empty wheel with the given tick length, positioned at now.
// It panics if tick is not positive.
func New[T any](tick time.Duration, now time.Time) *Wheel[T] {
	if tick <= 0 {
		panic("wheel: tick must be positive")
	}
	cur := floorDiv(unixNano(now), int64(tick))
	return &Wheel[T]{tick: int64(tick), cur: cur, moved: cur, top: 1, sorted: -1}
}

// Len returns the number of armed timers.
func (w *Wheel[T]) Len() int { return w.n }

// Add arms a timer with value v to fire at when, in O(1). The timer stays
// armed until it fires. Add allocates only when no node of the wheel's chunks
// is free: all hold armed timers. A timer for an instant the wheel has
// already passed fires at the next Advance.
func (w *Wheel[T]) Add(v T, when time.Time) {
	i, n := w.alloc()
	n.v, n.when = v, unixNano(when)
	w.n++
	if tick := w.tickOf(n.when); tick > w.cur {
		w.place(i, n, tick)
	} else {
		w.push(listDue+w.gen, i, n, tick)
	}
}

// Advance moves the wheel to now and fires every timer armed for an instant
// at or before now, and never one armed for an instant after now. It also
// fires the timers armed in the past since the last Advance. Each timer is
// disarmed, and its node freed, before its value and instant are passed to
// fire, in tick order (any order within a tick). The instant is the one given
// to Add to the nanosecond, as time.Unix returns it (no monotonic reading,
// the local location), clamped to the years 1678–2262. Then Advance moves
// down a share of the timers of the upper slots whose blocks come next (see
// the package documentation).
//
// fire may Add timers. A timer it arms fires in this same call if
// its tick is after the one being fired and not after now, and otherwise in a
// later Advance. fire must not call Advance. If fire panics, the wheel stays
// consistent and the timers it has not reached stay armed.
//
// A now earlier than the wheel's position only fires the timers armed in the
// past. Jumping far ahead costs one step per occupied slot, not per tick.
func (w *Wheel[T]) Advance(now time.Time, fire func(v T, when time.Time)) {
	if w.advancing {
		panic("wheel: Advance called from its own fire callback")
	}
	w.advancing = true
	defer func() { w.advancing = false }()

	due := listDue + w.gen
	w.gen ^= 1
	w.drain(due, fire)
	w.drain(listEarly, fire) // left by a fire that panicked in fireEarly

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
	if w.n == 0 {
		w.reset()
	}
}

// fireEarly fires the timers of the next tick whose instant is at or before
// now, in order of instant: a tick is the granularity of the slots, not of
// the firing. It moves them to a list of their own before firing any, so
// that fire may change the slot, and leaves the slot's whens exact.
//
// A driver that advances at every timer's instant, as the scheduler's does,
// calls fireEarly many times a tick: the slot is therefore sorted by instant
// the first time, and later calls take timers from its head, reading only
// the nodes they fire and the one after.
func (w *Wheel[T]) fireEarly(now int64, fire func(T, time.Time)) {
	s := int((w.cur + 1) & (level0Slots - 1))
	if w.heads[s] == 0 || w.whens[s] > now {
		return
	}
	if w.sorted != s {
		w.sortSlot(s)
	}
	// The head is due (whens[s] <= now): cut the list after the last due
	// node and make that prefix the early list, which Advance has drained.
	first, i, k := w.heads[s], w.heads[s], int32(0)
	var last *node[T]
	for i != 0 {
		n := w.node(i)
		if n.when > now {
			w.whens[s] = n.when
			break
		}
		last, i = n, n.next
		k++
	}
	last.next = 0
	w.heads[s], w.lens[s] = i, w.lens[s]-k
	w.vacate(s)
	w.heads[listEarly], w.lens[listEarly], w.mins[listEarly] = first, k, w.cur+1
	w.drain(listEarly, fire)
}

// sortSlot sorts the list of level-0 slot s by instant and marks it sorted:
// push keeps it so while timers come in order, and unmarks it otherwise.
func (w *Wheel[T]) sortSlot(s int) {
	w.scratch = w.scratch[:0]
	for i := w.heads[s]; i != 0; {
		n := w.node(i)
		w.scratch = append(w.scratch, timer{n.when, i})
		i = n.next
	}
	slices.SortFunc(w.scratch, func(a, b timer) int { return cmp.Compare(a.when, b.when) })
	next := uint32(0)
	for _, t := range slices.Backward(w.scratch) {
		w.node(t.i).next = next
		next = t.i
	}
	w.heads[s] = next
	w.whens[s] = w.scratch[0].when
	w.sorted = s
}

// Next returns the earliest instant at which the wheel wants Advance to be
// called, and false when no timer is armed. That is the earliest armed
// timer's instant when the timer is on level 0 (the coming 256 to 512 ticks),
// that instant rounded up to the tick on the upper levels, or earlier: when a
// large upper slot is being moved down ahead of its block, Next asks for an
// Advance every few ticks so that the move is spread out. A result before
// the last Advance means "now". Next is O(levels).
func (w *Wheel[T]) Next() (time.Time, bool) {
	if w.n == 0 {
		return time.Time{}, false
	}
	tick, ok := w.earliest()
	for _, due := range [...]int{listDue, listDue + 1} {
		if w.lens[due] > 0 && (!ok || w.mins[due] < tick) {
			tick, ok = w.mins[due], true
		}
	}
	if w.lens[listEarly] > 0 && (!ok || w.cur < tick) {
		tick, ok = w.cur, true // due at the last Advance, whose fire panicked
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
	if s := int(tick & (level0Slots - 1)); tick > w.cur && w.heads[s] != 0 && w.mins[s] == tick {
		at = max(w.whens[s], at-w.tick+1) // the first instant in the tick
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
	if w.lens[listOverflow] > 0 && (!ok || w.mins[listOverflow] < best) {
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
		s, left := w.pending(l)
		n := int64(w.lens[s])
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
			i := w.heads[s]
			nd := w.node(i)
			w.heads[s] = nd.next
			w.lens[s]--
			w.place(i, nd, w.tickOf(nd.when))
		}
		w.vacate(s)
	}
}

// replace empties list l and places each of its timers again.
func (w *Wheel[T]) replace(l int) {
	i := w.heads[l]
	if i == 0 {
		return
	}
	w.heads[l] = 0
	w.vacate(l)
	w.moves += int(w.lens[l])
	w.lens[l] = 0
	for i != 0 {
		n := w.node(i)
		next := n.next
		w.place(i, n, w.tickOf(n.when))
		i = next
	}
}

// drain disarms and fires the timers of list l until it is empty. Each node
// is unlinked and freed before fire sees its value, so that fire may reuse it
// and a panic in fire leaves the list consistent.
func (w *Wheel[T]) drain(l int, fire func(T, time.Time)) {
	var zero T
	for i := w.heads[l]; i != 0; i = w.heads[l] {
		n := w.node(i)
		w.heads[l] = n.next
		w.vacate(l)
		v, when := n.v, n.when
		n.v = zero
		w.lens[l]--
		w.n--
		w.release(i, n)
		fire(v, time.Unix(0, when))
	}
}

// place links node i, due at tick > cur, into the list it belongs to: the
// lowest level whose current or next block holds tick.
func (w *Wheel[T]) place(i uint32, n *node[T], tick int64) {
	for l := 0; l <= upperLevels; l++ {
		if bs := blockShift(l); tick>>bs-w.cur>>bs <= 1 {
			w.push(levelBase(l)+int(tick>>slotShift(l)&ringMask(l)), i, n, tick)
			return
		}
	}
	w.push(listOverflow, i, n, tick)
}

// push links the node i at the head of list l. It writes the node and
// the list's own fields, never the old head.
func (w *Wheel[T]) push(l int, i uint32, n *node[T], tick int64) {
	if l == w.sorted && w.lens[l] > 0 && n.when > w.whens[l] {
		w.sorted = -1 // out of order: fireEarly sorts the slot again
	}
	if w.lens[l] == 0 {
		w.mins[l] = tick
		if l < level0Slots {
			w.whens[l] = n.when
		}
	} else {
		w.mins[l] = min(w.mins[l], tick)
		if l < level0Slots {
			w.whens[l] = min(w.whens[l], n.when)
		}
	}
	if l < numSlots {
		w.occupied[l/64] |= 1 << (l % 64)
	}
	n.next = w.heads[l]
	w.heads[l] = i
	w.lens[l]++
}

// vacate clears the occupancy bit of list l if it has become empty.
func (w *Wheel[T]) vacate(l int) {
	if w.heads[l] == 0 && l < numSlots {
		w.occupied[l/64] &^= 1 << (l % 64)
	}
}

// node returns node i.
func (w *Wheel[T]) node(i uint32) *node[T] {
	return &w.chunks[i>>chunkBits][i%chunkSize]
}

// alloc takes a free node, from the free list or else the never-used ones,
// adding a chunk when there is none.
func (w *Wheel[T]) alloc() (uint32, *node[T]) {
	if i := w.free; i != 0 {
		n := w.node(i)
		w.free = n.next
		return i, n
	}
	i := w.top
	if int(i>>chunkBits) == len(w.chunks) {
		w.chunks = append(w.chunks, new([chunkSize]node[T]))
	}
	w.top++
	return i, w.node(i)
}

// release puts the unlinked node i, with its value zeroed, on the free list.
func (w *Wheel[T]) release(i uint32, n *node[T]) {
	n.next = w.free
	w.free = i
}

// reset drops all chunks but the first once no timer is armed, so that no
// list is linked. It keeps the wheel's position.
func (w *Wheel[T]) reset() {
	if len(w.chunks) > 1 {
		clear(w.chunks[1:])
		w.chunks = w.chunks[:1]
	}
	w.free, w.top = 0, 1
	w.scratch = nil // a burst's sort may have grown it
}

// tickOf returns the first tick at or after the instant when.
func (w *Wheel[T]) tickOf(when int64) int64 {
	q := when / w.tick
	if when%w.tick > 0 {
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
