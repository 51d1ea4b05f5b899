package wheel

import (
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"
	"unsafe"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// base is a tick number aligned on every level, so slot numbers in the
// tables below read directly from the offsets.
const base = 5 << topBits

// at returns the instant of tick base+ticks (1 ms ticks) plus extra.
func at(ticks int64, extra time.Duration) time.Time {
	return time.Unix(0, (base+ticks)*int64(time.Millisecond)).Add(extra)
}

// where describes the list holding the timer with value v: "L<level>/<slot>",
// "due", "overflow" or "unarmed".
func where[T comparable](w *Wheel[T], v T) string {
	i := listWith(w, v)
	switch {
	case i < 0:
		return "unarmed"
	case i < level0Slots:
		return fmt.Sprintf("L0/%d", i)
	case i < numSlots:
		return fmt.Sprintf("L%d/%d", (i-level0Slots)/upperSlots+1, (i-level0Slots)%upperSlots)
	case i == listDue || i == listDue+1:
		return "due"
	case i == listOverflow:
		return "overflow"
	}
	return "?"
}

// listWith returns the list holding the timer with value v, or -1.
func listWith[T comparable](w *Wheel[T], v T) int {
	for i := range numLists {
		for x := w.heads[i]; x != 0; x = w.node(x).next {
			if w.node(x).v == v {
				return i
			}
		}
	}
	return -1
}

// check verifies every structural invariant of w, storage included: every
// node below top is either linked or free, free nodes hold no value, and no
// chunk is kept beyond the used ones. It must not be called from a fire
// callback.
func check[T any](t *testing.T, w *Wheel[T]) {
	t.Helper()
	n, linked := 0, 0
	var lens [numLists]int32
	for i := range numLists {
		prev := int64(math.MinInt64) // in the sorted slot
		for x := w.heads[i]; x != 0; x = w.node(x).next {
			nd := w.node(x)
			if linked++; linked >= int(w.top) {
				t.Fatalf("list %d: more nodes linked than used, a cycle", i)
			}
			n++
			if i < level0Slots && nd.when < w.whens[i] {
				t.Fatalf("slot %d: instant %d below its lower bound %d", i, nd.when, w.whens[i])
			}
			if i == w.sorted {
				if x == w.heads[i] && nd.when != w.whens[i] {
					t.Fatalf("sorted slot %d: head at %d, lower bound %d", i, nd.when, w.whens[i])
				}
				if nd.when < prev {
					t.Fatalf("sorted slot %d: %d after %d", i, nd.when, prev)
				}
				prev = nd.when
			}
			tick := w.tickOf(nd.when)
			if tick < w.mins[i] {
				t.Fatalf("list %d: tick %d below its minimum %d", i, tick, w.mins[i])
			}
			if i >= listDue && i < listOverflow {
				if tick > w.cur {
					t.Fatalf("due timer at tick %d after cur %d", tick, w.cur)
				}
				lens[i]++
				continue
			}
			if i == listEarly { // left by a fire that panicked in fireEarly
				if tick != w.cur+1 {
					t.Fatalf("early timer at tick %d, cur %d", tick, w.cur)
				}
				lens[i]++
				continue
			}
			if tick <= w.cur || !allowed(w.cur, tick, i) {
				t.Fatalf("timer at tick %d (cur %d) in list %d, want %d", tick, w.cur, i, listOf(w.cur, tick))
			}
			lens[i]++
		}
		if lens[i] != w.lens[i] {
			t.Fatalf("list %d: %d timers, length %d", i, lens[i], w.lens[i])
		}
		if i < numSlots && (w.heads[i] != 0) != (w.occupied[i/64]&(1<<(i%64)) != 0) {
			t.Fatalf("slot %d: occupancy bit disagrees with its list", i)
		}
	}
	if n != w.n {
		t.Fatalf("%d timers linked, Len %d", n, w.n)
	}
	free := 0
	for x := w.free; x != 0; x = w.node(x).next {
		if free++; x >= w.top || free >= int(w.top) {
			t.Fatalf("free list: node %d beyond top %d, or a cycle", x, w.top)
		}
		if nd := w.node(x); !reflect.ValueOf(nd.v).IsZero() {
			t.Fatalf("free node %d keeps its value", x)
		}
	}
	if linked+free != int(w.top)-1 {
		t.Fatalf("%d nodes linked and %d free of %d used", linked, free, w.top-1)
	}
	if used := int(w.top-1)>>chunkBits + 1; len(w.chunks) > max(used, 1) || w.top > 1 && len(w.chunks) < used {
		t.Fatalf("%d chunks for %d nodes used", len(w.chunks), w.top-1)
	}
}

// listOf is the placement rule written the slow way, to check place against:
// the lowest level whose current or next block holds tick.
func listOf(cur, tick int64) int {
	for l := 0; l <= upperLevels; l++ {
		if cur>>blockShift(l)+1 >= tick>>blockShift(l) {
			return slotOf(l, tick)
		}
	}
	return listOverflow
}

func slotOf(l int, tick int64) int {
	if l == 0 {
		return int(tick % level0Slots)
	}
	return level0Slots + (l-1)*upperSlots + int(tick>>(level0Bits+(l-1)*upperBits)%upperSlots)
}

// allowed reports whether a timer due at tick may sit in list i: where
// place puts it, or on a higher level it was placed on earlier, as long as
// that level's ring reaches tick and tick is not in the current block of the
// level below (the block it must have moved down by).
func allowed(cur, tick int64, i int) bool {
	if i == listOf(cur, tick) {
		return true
	}
	for l := 1; l <= upperLevels; l++ {
		if i == slotOf(l, tick) {
			return tick>>blockShift(l) <= cur>>blockShift(l)+1 && tick>>blockShift(l-1) > cur>>blockShift(l-1)
		}
	}
	return i == listOverflow && tick>>topBits > cur>>topBits
}

func TestPlacement(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	tests := []struct {
		name string
		cur  int64     // ticks after base
		when time.Time // instant to arm for
		want string    // list, as returned by where
	}{
		{"now is due", 0, at(0, 0), "due"},
		{"past is due", 0, at(-1000, 0), "due"},
		{"zero time is due", 0, time.Time{}, "due"},
		{"1ns ahead rounds up to the next tick", 0, at(0, 1), "L0/1"},
		{"just under a tick", 0, at(0, ms-1), "L0/1"},
		{"one tick", 0, at(1, 0), "L0/1"},
		{"end of the current block", 0, at(255, 0), "L0/255"},
		{"1ns past the block rounds into the next, still level 0", 0, at(255, 1), "L0/256"},
		{"end of level 0's next block", 0, at(511, 0), "L0/511"},
		{"two blocks ahead is level 1", 0, at(512, 0), "L1/2"},
		{"end of level 1's next block", 0, at(1<<15-1, 0), "L1/127"},
		{"start of level 2", 0, at(1<<15, 0), "L2/2"},
		{"level 2 slot by bits 14..20", 0, at(5<<14+77, 0), "L2/5"},
		{"start of level 3 (base sets bit 26)", 0, at(1<<21, 0), "L3/66"},
		{"end of level 3", 0, at(1<<27-1, 0), "L3/63"},
		{"past level 3 is overflow", 0, at(1<<27, 0), "overflow"},
		{"far future is overflow", 0, time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), "overflow"},
		{"the next block is level 0", 200, at(300, 0), "L0/300"},
		{"two blocks ahead of cur", 200, at(600, 0), "L1/2"},
		{"same block after cur", 200, at(255, 0), "L0/255"},
		{"behind cur in the same block is due", 200, at(100, 0), "due"},
		{"across the top block, two blocks ahead", 1<<27 - 1, at(1<<27+300, 0), "L1/1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := New[int](ms, at(tt.cur, 0))
			w.Add(0, tt.when)
			if got := where(w, 0); got != tt.want {
				t.Errorf("placed in %s, want %s", got, tt.want)
			}
			check(t, w)
		})
	}
}

func TestCascade(t *testing.T) {
	t.Parallel()
	w := New[string](time.Millisecond, at(0, 0))
	for name, when := range map[string]int64{
		"a": 600,                       // level 1, moved down ahead of its block
		"b": 1<<15 + 5<<8 + 7,          // level 2, then level 1 slot 5, then level 0 slot 263
		"c": 1<<27 + 3,                 // overflow, then level 3, then level 0
		"d": 1<<27 + 2<<20 + 1<<14 + 1, // overflow, then level 3, 2, 1, 0
	} {
		w.Add(name, at(when, 0))
	}
	steps := []struct {
		to    int64             // Advance to base + to ticks
		where map[string]string // expected lists afterwards
		fired []string
	}{
		{255, map[string]string{"a": "L1/2", "b": "L2/2", "c": "overflow", "d": "overflow"}, nil},
		// Entering block 1 moves down block 2's slot: a's.
		{256, map[string]string{"a": "L0/88", "b": "L2/2"}, nil},
		{599, map[string]string{"a": "L0/88"}, nil},
		{600, map[string]string{"a": "unarmed"}, []string{"a"}},
		// Entering level-1 block 1 moves down level-1 block 2's slot: b's.
		{1 << 14, map[string]string{"b": "L1/5"}, nil},
		{1<<15 + 4<<8, map[string]string{"b": "L0/263"}, nil},
		{1<<15 + 5<<8 + 7, map[string]string{"b": "unarmed"}, []string{"b"}},
		{1 << 26, map[string]string{"c": "L3/64", "d": "L3/66"}, nil},
		// One jump fires c and moves d through every level on the way.
		{1<<27 + 2<<20 + 1<<14 + 1, map[string]string{"c": "unarmed", "d": "unarmed"}, []string{"c", "d"}},
	}
	for _, s := range steps {
		var fired []string
		w.Advance(at(s.to, 0), func(v string, _ time.Time) { fired = append(fired, v) })
		if !slices.Equal(fired, s.fired) {
			t.Errorf("advance to +%d fired %v, want %v", s.to, fired, s.fired)
		}
		for name, want := range s.where {
			if got := where(w, name); got != want {
				t.Errorf("after advance to +%d: %s in %s, want %s", s.to, name, got, want)
			}
		}
		check(t, w)
	}
}

// TestCascadeIsSpread arms 60,000 timers due over one level-1 block, two
// blocks ahead, and drives the wheel by Next as the scheduler does: no
// Advance may move more than a few batches of timers down at once (a
// classic wheel moves all 60,000 when their block starts), and every timer
// still fires exactly at its tick.
func TestCascadeIsSpread(t *testing.T) {
	t.Parallel()
	const n = 60000
	w := New[int](time.Millisecond, at(0, 0))
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range n {
		w.Add(i, at(1<<15+rng.Int64N(1<<14), 0))
	}
	fired, wakes, most := 0, 0, 0
	for w.Len() > 0 {
		now, _ := w.Next()
		before := w.moves
		w.Advance(now, func(_ int, when time.Time) {
			fired++
			if !when.Equal(now) {
				t.Fatalf("timer due %v fired at %v", when, now)
			}
		})
		most = max(most, w.moves-before)
		wakes++
	}
	check(t, w)
	if fired != n {
		t.Fatalf("fired %d of %d", fired, n)
	}
	if most > 4*precascadeBatch {
		t.Errorf("one Advance moved %d timers down; want at most %d", most, 4*precascadeBatch)
	}
	t.Logf("%d wake-ups, at most %d timers moved by one Advance, %d moves in all", wakes, most, w.moves)
}

// TestChunksReleased arms enough timers for several chunks and checks that
// all but the first are released when the last timer fires, round after
// round.
func TestChunksReleased(t *testing.T) {
	t.Parallel()
	const n = 5*chunkSize - 1 // node 0 is never used
	w := New[string](time.Millisecond, at(0, 0))
	for round := range 2 {
		start := int64(round) * 10000
		for i := range n {
			w.Add(fmt.Sprint(i), at(start+int64(1+i%2000), 0))
		}
		if len(w.chunks) != 5 {
			t.Fatalf("%d chunks for %d timers, want 5", len(w.chunks), n)
		}
		first := w.chunks[0]
		w.Advance(at(start+3000, 0), func(string, time.Time) {})
		check(t, w)
		if len(w.chunks) != 1 || w.chunks[0] != first || w.top != 1 {
			t.Fatalf("round %d: %d chunks, top %d; want the first chunk only", round, len(w.chunks), w.top)
		}
		for i := range n { // new chunks again
			w.Add("new", at(start+int64(5000+i%2000), 0))
		}
		w.Advance(at(start+8000, 0), func(string, time.Time) {})
		check(t, w)
	}
}

// TestAddAllocs checks that a wheel in steady state, whose timers fire as
// others are armed, reuses its nodes and allocates nothing. It is not
// parallel: AllocsPerRun counts the allocations of the whole process.
func TestAddAllocs(t *testing.T) {
	w := New[[24]byte](time.Millisecond, at(0, 0))
	now := at(0, 0)
	fire := func([24]byte, time.Time) {}
	var v [24]byte
	step := func() {
		for range 2 * chunkSize {
			now = now.Add(time.Millisecond)
			w.Advance(now, fire)
			w.Add(v, now.Add(time.Second))
			w.Add(v, now.Add(300*time.Millisecond))
			w.Add(v, now.Add(300*time.Millisecond))
		}
	}
	step() // the wheel reaches its steady size
	// One run, so that a single allocation is not rounded away.
	if allocs := testing.AllocsPerRun(1, step); allocs != 0 {
		t.Errorf("%v allocations in %d Adds in steady state, want 0", allocs, 6*chunkSize)
	}
	check(t, w)
}

func TestFireCallback(t *testing.T) {
	t.Parallel()
	const ms = time.Millisecond

	t.Run("re-add in the future fires again in the same Advance", func(t *testing.T) {
		t.Parallel()
		w := New[int](ms, at(0, 0))
		w.Add(0, at(10, 0))
		var fired []time.Time
		w.Advance(at(35, 0), func(v int, when time.Time) {
			fired = append(fired, when)
			w.Add(v, when.Add(10*ms)) // a periodic timer catching up
		})
		want := []time.Time{at(10, 0), at(20, 0), at(30, 0)}
		if !slices.EqualFunc(fired, want, time.Time.Equal) {
			t.Errorf("fired at %v, want %v", fired, want)
		}
		if next, _ := w.Next(); w.Len() != 1 || !next.Equal(at(40, 0)) {
			t.Errorf("want re-armed for +40ms, got Len %d, Next %v", w.Len(), next)
		}
		check(t, w)
	})

	t.Run("re-add in the past fires at the next Advance", func(t *testing.T) {
		t.Parallel()
		w := New[int](ms, at(0, 0))
		w.Add(0, at(-5, 0)) // already due
		n := 0
		fire := func(v int, _ time.Time) {
			n++
			w.Add(v, at(-1000, 0))
		}
		for i := 1; i <= 3; i++ {
			w.Advance(at(0, 0), fire)
			if n != i || w.Len() != 1 {
				t.Fatalf("Advance %d: fired %d times, Len %d; want %d, 1", i, n, w.Len(), i)
			}
			check(t, w)
		}
		if next, ok := w.Next(); !ok || next.After(at(-1000, 0)) {
			t.Errorf("Next = %v, %v; want the overdue instant", next, ok)
		}
	})

	t.Run("add many", func(t *testing.T) {
		t.Parallel()
		// Each fired timer arms three (one in the past, one later in this
		// Advance, one after it): the wheel grows chunks and reuses nodes
		// while it fires.
		w := New[int](ms, at(0, 0))
		added := 0
		armed := map[int]bool{}
		add := func(when time.Time) {
			armed[added] = true
			w.Add(added, when)
			added++
		}
		for i := range 200 {
			add(at(int64(i), 0))
		}
		fires := 0
		now := at(1000, 0)
		fire := func(v int, when time.Time) {
			if !armed[v] || when.After(now) {
				t.Fatalf("fired %d due %v at %v, armed %v", v, when, now, armed[v])
			}
			delete(armed, v)
			if fires++; fires > 4000 {
				return
			}
			add(at(-1, 0))
			add(when.Add(ms))
			add(at(5000, 0))
		}
		w.Advance(now, fire)
		check(t, w)
		if w.Len() != len(armed) || len(w.chunks) < 2 {
			t.Errorf("Len %d, %d armed by the test, %d chunks", w.Len(), len(armed), len(w.chunks))
		}
		now = at(6000, 0)
		w.Advance(now, fire)
		check(t, w)
		if w.Len() != 0 || len(armed) != 0 {
			t.Errorf("Len %d, %d not fired", w.Len(), len(armed))
		}
	})

	t.Run("Advance from fire panics", func(t *testing.T) {
		t.Parallel()
		w := New[int](ms, at(0, 0))
		w.Add(0, at(1, 0))
		defer func() {
			if recover() == nil {
				t.Error("no panic")
			}
			w.Advance(at(2, 0), func(int, time.Time) {}) // usable again
		}()
		w.Advance(at(1, 0), func(int, time.Time) { w.Advance(at(1, 0), nil) })
	})

	t.Run("panic in fire keeps the rest armed", func(t *testing.T) {
		t.Parallel()
		w := New[int](ms, at(0, 0))
		for i := range 3 {
			w.Add(i, at(int64(i)*100, 0)) // 0 is due, 100 and 200 later
		}
		func() {
			defer func() { _ = recover() }()
			w.Advance(at(300, 0), func(int, time.Time) { panic("boom") })
		}()
		check(t, w)
		if w.Len() != 2 {
			t.Fatalf("Len %d after the panic, want 2", w.Len())
		}
		n := 0
		w.Advance(at(300, 0), func(int, time.Time) { n++ })
		if n != 2 || w.Len() != 0 {
			t.Errorf("fired %d, Len %d; want 2, 0", n, w.Len())
		}
	})
}

// TestPanicInFireEarly checks that a fire callback panicking while Advance
// fires timers of the next tick ahead of it strands none of them: the next
// Advance fires the rest, once each.
func TestPanicInFireEarly(t *testing.T) {
	t.Parallel()
	const us = time.Microsecond
	w := New[int](time.Millisecond, at(0, 0))
	w.Add(1, at(1, 100*us))
	w.Add(2, at(1, 200*us))
	var fired []int
	func() {
		defer func() {
			if recover() == nil {
				t.Error("no panic")
			}
		}()
		w.Advance(at(1, 500*us), func(v int, _ time.Time) {
			fired = append(fired, v)
			if v == 1 {
				panic("boom")
			}
		})
	}()
	check(t, w)
	if w.Len() != 1 {
		t.Fatalf("Len %d after the panic, want 1", w.Len())
	}
	if next, ok := w.Next(); !ok || next.After(at(1, 500*us)) {
		t.Errorf("Next = %v, %v; want the timer left due now", next, ok)
	}
	w.Advance(at(1, 600*us), func(v int, _ time.Time) { fired = append(fired, v) })
	w.Advance(at(5, 0), func(v int, _ time.Time) { fired = append(fired, v) })
	if !slices.Equal(fired, []int{1, 2}) || w.Len() != 0 {
		t.Errorf("fired %v, Len %d; want [1 2], 0", fired, w.Len())
	}
	check(t, w)
}

// TestFireEarlyInOrder advances through one tick a microsecond at a time,
// as the scheduler's driver does at 100,000 fires a second, adding timers
// to that tick before and after the ones already armed in between. Each
// Advance fires exactly the timers due by then, in order of instant, and
// the slot stays sorted while the added timers come in order.
func TestFireEarlyInOrder(t *testing.T) {
	t.Parallel()
	const us = time.Microsecond
	rng := rand.New(rand.NewPCG(3, 4))
	w := New[int](time.Millisecond, at(0, 0))
	armed := map[int]time.Duration{} // value -> offset into tick 1
	add := func(v int, d time.Duration) {
		w.Add(v, at(0, d))
		armed[v] = d
	}
	for v := range 300 {
		add(v, time.Duration(1+rng.IntN(999))*us)
	}
	next := 300
	for now := us; now <= time.Millisecond; now += us {
		var fired []time.Duration
		w.Advance(at(0, now), func(v int, when time.Time) {
			d, ok := armed[v]
			if !ok || !when.Equal(at(0, d)) || d > now {
				t.Fatalf("at +%v: fired %d (armed %v, %v) at %v", now, v, d, ok, when)
			}
			delete(armed, v)
			fired = append(fired, d)
		})
		if !slices.IsSorted(fired) {
			t.Fatalf("at +%v: fired out of order: %v", now, fired)
		}
		for v, d := range armed {
			if d <= now {
				t.Fatalf("at +%v: %d due at +%v not fired", now, v, d)
			}
		}
		check(t, w)
		if now%(50*us) == 0 && now < 900*us {
			sorted := w.sorted
			add(next, now+us) // before every armed timer: the slot stays sorted
			if w.sorted != sorted {
				t.Fatalf("at +%v: adding the earliest timer unsorted the slot", now)
			}
			add(next+1, now+time.Duration(1+rng.IntN(100))*us)
			next += 2
			check(t, w)
		}
	}
	if len(armed) != 0 || w.Len() != 0 {
		t.Fatalf("%d timers never fired, Len %d", len(armed), w.Len())
	}
}

func TestNext(t *testing.T) {
	t.Parallel()
	const ms = time.Millisecond
	w := New[int](ms, at(0, 0))
	if _, ok := w.Next(); ok {
		t.Fatal("Next on an empty wheel reported a timer")
	}
	next := func() time.Time {
		t.Helper()
		n, ok := w.Next()
		if !ok {
			t.Fatal("Next reported no timer")
		}
		return n
	}
	// advance moves to now and checks that it fires exactly want.
	advance := func(now time.Time, want ...int) {
		t.Helper()
		var fired []int
		w.Advance(now, func(v int, _ time.Time) { fired = append(fired, v) })
		if !slices.Equal(fired, want) {
			t.Errorf("Advance to %v fired %v, want %v", now, fired, want)
		}
	}
	w.Add(1, at(3<<26+12345, 0)) // overflow
	if got := next(); !got.Equal(at(3<<26+12345, 0)) {
		t.Errorf("overflow only: Next %v", got)
	}
	w.Add(2, at(70000, 1)) // level 2, not on the grid: rounds up
	if got := next(); !got.Equal(at(70001, 0)) {
		t.Errorf("level 2: Next %v, want %v", got, at(70001, 0))
	}
	w.Add(3, at(70001+50, 0)) // same level-2 slot, later
	w.Add(4, at(7, 0))
	if got := next(); !got.Equal(at(7, 0)) {
		t.Errorf("level 0: Next %v", got)
	}
	advance(next(), 4)
	if got := next(); !got.Equal(at(70001, 0)) {
		t.Errorf("after the level-0 timer fired: Next %v", got)
	}
	advance(next(), 2)
	if got := next(); !got.Equal(at(70051, 0)) {
		t.Errorf("after the earliest of a slot fired: Next %v, want %v", got, at(70051, 0))
	}
	// On level 0, Next names the instant within the tick.
	w.Add(5, at(70051-1, 2))
	if got := next(); !got.Equal(at(70051-1, 2)) {
		t.Errorf("level 0 within a tick: Next %v, want %v", got, at(70051-1, 2))
	}
	w.Add(6, at(-10, 0))
	if got := next(); !got.Equal(at(-10, 0)) {
		t.Errorf("with an overdue timer: Next %v, want %v", got, at(-10, 0))
	}
	advance(next(), 6)
	advance(at(3<<26+12345, 0), 5, 3, 1)
	w.Add(0, time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC))
	w.Advance(at(1<<30, 0), func(int, time.Time) {})
	if got := next(); !got.Equal(time.Unix(0, 1<<63-1)) {
		t.Errorf("beyond 2262: Next %v, want the clamped maximum", got)
	}
	check(t, w)
}

// TestDriveByNext drives the wheel as the scheduler does, advancing only to
// the instants Next reports: every timer must fire between its instant and
// that instant rounded up to the tick (at its instant once it is on level 0),
// and no wake-up may fire nothing.
func TestDriveByNext(t *testing.T) {
	t.Parallel()
	const n = 2000
	rng := rand.New(rand.NewPCG(7, 0))
	const tick = 3 * time.Millisecond // not a divisor of a second
	start := time.Date(2031, 5, 6, 7, 8, 9, 10, time.UTC)
	w := New[int](tick, start)
	for i := range n {
		w.Add(i, start.Add(randOffset(rng, int64(tick))))
	}
	check(t, w)
	empty, exact := 0, 0
	for w.Len() > 0 {
		now, _ := w.Next()
		fired := 0
		w.Advance(now, func(_ int, when time.Time) {
			fired++
			if when.Before(start) {
				return
			}
			if latest := roundUp(when, tick); now.Before(when) || now.After(latest) {
				t.Errorf("timer due %v fired at %v, want from its instant to %v", when, now, latest)
			}
			if now.Equal(when) {
				exact++
			}
		})
		if fired == 0 {
			empty++
		}
	}
	check(t, w)
	if empty > 0 {
		t.Errorf("%d empty wake-ups", empty)
	}
	t.Logf("%d of %d timers fired at their very instant", exact, n)
}

func roundUp(t time.Time, tick time.Duration) time.Time {
	if r := t.Truncate(tick); !r.Equal(t) {
		return r.Add(tick)
	}
	return t
}

// randOffset returns an offset in nanoseconds spread over every level, the
// overflow and the past, rarely on the tick grid.
func randOffset(rng *rand.Rand, tick int64) time.Duration {
	var span int64
	switch r := rng.IntN(20); {
	case r < 2:
		return -time.Duration(rng.Int64N(1000 * tick))
	case r < 3:
		return time.Duration(rng.Int64N(3) * tick) // on the grid
	case r < 8:
		span = 300
	case r < 12:
		span = 1 << 15
	case r < 15:
		span = 1 << 21
	case r < 18:
		span = 1 << 27
	default:
		span = 1 << 30
	}
	return time.Duration(rng.Int64N(span * tick))
}

// TestAgainstReference runs random Add and Advance calls against a map of
// armed timers and checks that each Advance fires exactly the timers due by
// then, none early, none twice, none lost, in tick order.
func TestAgainstReference(t *testing.T) {
	t.Parallel()
	for _, tick := range []time.Duration{1, time.Millisecond, 7 * time.Microsecond} {
		t.Run(fmt.Sprintf("tick=%v", tick), func(t *testing.T) {
			t.Parallel()
			for seed := range uint64(8) {
				runReference(t, int64(tick), seed)
			}
		})
	}
}

func runReference(t *testing.T, tick int64, seed uint64) {
	const timers = 200 // timer i has value i
	rng := rand.New(rand.NewPCG(seed, uint64(tick)))
	now := time.Date(2030, 1, 1, 0, 0, 0, 123456789, time.UTC).UnixNano()
	w := New[int](time.Duration(tick), time.Unix(0, now))
	cur := floorDiv(now, tick) // the reference's idea of the wheel position
	armed := map[int]int64{}   // timer index -> when
	ceilTick := func(when int64) int64 { return -floorDiv(-when, tick) }
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("seed %d: "+format, append([]any{seed}, args...)...)
	}

	for step := range 2000 {
		switch r := rng.IntN(10); {
		case r < 5: // Add a timer that is not armed
			i := rng.IntN(timers)
			if _, ok := armed[i]; ok {
				continue
			}
			when := now + int64(randOffset(rng, tick))
			w.Add(i, time.Unix(0, when))
			armed[i] = when
		default:
			switch r := rng.IntN(10); {
			case r < 1: // same instant
			case r < 4:
				now += rng.Int64N(3 * tick)
			case r < 7:
				now += rng.Int64N(300 * tick)
			case r < 9:
				now += rng.Int64N(1 << 16 * tick)
			default:
				now += rng.Int64N(1 << 28 * tick)
			}
			startCur := cur
			cur = max(cur, floorDiv(now, tick))
			var fired []int
			var lastTick int64
			w.Advance(time.Unix(0, now), func(i int, instant time.Time) {
				when, ok := armed[i]
				switch {
				case !ok:
					fail("step %d: fired timer %d that is not armed (or twice)", step, i)
				case when > now:
					fail("step %d: fired timer %d due %d early at %d", step, i, when, now)
				case instant.UnixNano() != when:
					fail("step %d: fired timer %d due %d with instant %d", step, i, when, instant.UnixNano())
				}
				if ct := ceilTick(when); ct > startCur {
					if ct < lastTick {
						fail("step %d: fired tick %d after tick %d", step, ct, lastTick)
					}
					lastTick = ct
				}
				delete(armed, i)
				fired = append(fired, i)
			})
			for i, when := range armed {
				if ceilTick(when) <= cur {
					fail("step %d: timer %d due at tick %d not fired by tick %d (fired %v)", step, i, ceilTick(when), cur, fired)
				}
			}
		}

		check(t, w)
		if w.Len() != len(armed) {
			fail("step %d: Len %d, want %d", step, w.Len(), len(armed))
		}
		next, ok := w.Next()
		if ok != (len(armed) > 0) {
			fail("step %d: Next ok = %v with %d armed", step, ok, len(armed))
		}
		if !ok {
			continue
		}
		// Next is never later than the earliest timer's tick, nor before the
		// earliest timer's instant.
		earliest, first := int64(1<<63-1), int64(1<<63-1)
		for _, when := range armed {
			earliest = min(earliest, ceilTick(when))
			first = min(first, when)
		}
		got := next.UnixNano()
		if floorDiv(got-1, tick) >= earliest || (got < first && first > w.cur*tick) {
			fail("step %d: Next at %d, earliest timer at %d (tick %d)", step, got, first, earliest)
		}
	}
}

func TestNodeSize(t *testing.T) {
	t.Parallel()
	size := unsafe.Sizeof(node[[24]byte]{})
	t.Logf("unsafe.Sizeof(node[[24]byte]) = %d bytes", size)
	if unsafe.Sizeof(uintptr(0)) == 8 && size > 40 {
		t.Errorf("node[[24]byte] is %d bytes, want at most 24 + when + next = 40", size)
	}
}

func TestNewPanicsOnBadTick(t *testing.T) {
	t.Parallel()
	defer func() {
		if recover() == nil {
			t.Error("New with a zero tick did not panic")
		}
	}()
	New[int](0, time.Now())
}
