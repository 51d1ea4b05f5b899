package memstore

import (
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"slices"
	"testing"
	"unsafe"
)

// TestIndex checks the index against a sorted slice through random inserts
// and deletes in several patterns. A deleted entry's slot is freed and
// reused by the next insert, with another ID, priority and due time, as in
// a store: a stale entry must never count for the record that took its
// slot.
func TestIndex(t *testing.T) {
	for _, p := range []struct {
		name string
		at   func(rng *rand.Rand, i int) int64
		del  func(rng *rand.Rand, model []key) int // index of the entry to delete
	}{
		{"random", func(rng *rand.Rand, _ int) int64 { return rng.Int64N(1000) }, randomEntry},
		{"ties", func(rng *rand.Rand, _ int) int64 { return rng.Int64N(3) }, randomEntry},
		{"ascending/queue", func(_ *rand.Rand, i int) int64 { return int64(i) }, func(*rand.Rand, []key) int { return 0 }},
		{"descending/stack", func(_ *rand.Rand, i int) int64 { return -int64(i) }, func(*rand.Rand, []key) int { return 0 }},
		{"ascending/random", func(_ *rand.Rand, i int) int64 { return int64(i) }, randomEntry},
		{"random/last", func(rng *rand.Rand, _ int) int64 { return rng.Int64N(1000) }, func(_ *rand.Rand, model []key) int { return len(model) - 1 }},
	} {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(1, 2))
			x := newIndex()
			var model []key
			seq := 0
			// Grow to thousands of entries, shrink to 0, grow again: every
			// flush, merge and trim happens.
			for _, phase := range []struct{ steps, insertPct int }{{8000, 80}, {8000, 10}, {8000, 70}} {
				for range phase.steps {
					if len(model) == 0 || rng.IntN(100) < phase.insertPct {
						seq++
						k := newEntry(x.recs, p.at(rng, seq), fmt.Sprintf("id%06d", seq), int16(rng.IntN(3)-1))
						x.insert(k.ref, k.at)
						i, _ := slices.BinarySearchFunc(model, *k, compareKeys)
						model = slices.Insert(model, i, *k)
					} else {
						i := p.del(rng, model)
						x.delete(model[i].ref)
						x.recs.release(model[i].ref)
						model = slices.Delete(model, i, i+1)
					}
					if seq%97 == 0 {
						check(t, x, model, rng)
					}
				}
				check(t, x, model, rng)
			}
		})
	}
}

// TestIndexTrimsInOrderDeletes deletes entries in due order, as claims
// mostly do: the runs must not keep them.
func TestIndexTrimsInOrderDeletes(t *testing.T) {
	x := newIndex()
	rng := rand.New(rand.NewPCG(5, 6))
	var model []key
	for i := range 20 * tailLen {
		model = add(x, model, rng.Int64N(1e9), fmt.Sprint(i))
	}
	x.flush()
	slices.SortFunc(model, compareKeys)
	for _, k := range model[:len(model)/2] {
		x.delete(k.ref)
	}
	if n := x.held(); n != len(model)/2 {
		t.Errorf("after deleting the first half in order, the runs hold %d entries, want %d", n, len(model)/2)
	}
	if n := len(x.runs); n > 6 {
		t.Errorf("%d entries in %d runs, want at most 6", len(model), n)
	}
}

// TestIndexCompacts deletes entries out of order, as cancellations of
// timeouts do, while adding others: the index must not keep more than
// about twice the live entries.
func TestIndexCompacts(t *testing.T) {
	x := newIndex()
	rng := rand.New(rand.NewPCG(9, 10))
	var model []key
	for i := range 200_000 {
		model = add(x, model, int64(i)+1e9, fmt.Sprint(i)) // due later than any before
		if len(model) > 1000 {
			j := 1 + rng.IntN(len(model)-1) // never the first: not at a head
			x.delete(model[j].ref)
			x.recs.release(model[j].ref)
			model[j] = model[len(model)-1]
			model = model[:len(model)-1]
		}
		if n := x.held(); n > 2*len(model)+2*tailLen {
			t.Fatalf("after %d inserts the index holds %d entries for %d live ones", i+1, n, len(model))
		}
	}
	slices.SortFunc(model, compareKeys)
	check(t, x, model, rng)
}

// TestIndexMergeLimit fills an index with several times maxMerge entries
// due in random order, deleting some: no merge makes a run of more than
// maxMerge entries, and the runs stay few.
func TestIndexMergeLimit(t *testing.T) {
	x := newIndex()
	rng := rand.New(rand.NewPCG(7, 8))
	var model []key
	for i := range 5 * maxMerge {
		model = add(x, model, rng.Int64N(1e9), fmt.Sprint(i))
		if i%7 == 0 {
			j := rng.IntN(len(model))
			x.delete(model[j].ref)
			x.recs.release(model[j].ref)
			model = slices.Delete(model, j, j+1)
		}
	}
	slices.SortFunc(model, compareKeys)
	check(t, x, model, rng)
	for j := range x.runs {
		if n := len(x.runs[j].e); n > maxMerge {
			t.Errorf("run %d holds %d entries, more than maxMerge", j, n)
		}
	}
}

// newIndex returns an empty index of the records of a slab of its own.
func newIndex() *index { return &index{recs: new(slab)} }

// add stores a record with priority 0 due at at, inserts it into x, and
// returns model with its key appended.
func add(x *index, model []key, at int64, id string) []key {
	k := newEntry(x.recs, at, id, 0)
	x.insert(k.ref, k.at)
	return append(model, *k)
}

// newEntry stores a record in recs and returns its key at at.
func newEntry(recs *slab, at int64, id string, priority int16) *key {
	i := recs.alloc()
	r := recs.at(i)
	r.id, r.priority, r.due = id, priority, at
	return &key{at: at, id: id, ref: i, priority: priority}
}

func compareKeys(a, b key) int { return a.compare(&b) }

func randomEntry(rng *rand.Rand, model []key) int { return rng.IntN(len(model)) }

// check compares x with model, including ascend from a random pivot, and
// checks x's invariants: every run is in order, holds more than twice the
// entries of the next right after a flush, and there are few runs.
func check(t *testing.T, x *index, model []key, rng *rand.Rand) {
	t.Helper()
	entries := func(from *key, limit int) []key {
		var ks []key
		x.ascend(from, func(at int64, i uint32) bool {
			k := x.recs.at(i).key(i)
			k.at = at
			ks = append(ks, k)
			return len(ks) < limit
		})
		return ks
	}
	if got := entries(&key{at: -1 << 62, ref: noRef, priority: math.MaxInt16}, len(model)+1); !slices.Equal(got, model) {
		t.Fatalf("index holds %d entries, model %d (or in another order)", len(got), len(model))
	}
	if len(model) > 0 {
		pivot := model[rng.IntN(len(model))]
		i, _ := slices.BinarySearchFunc(model, pivot, compareKeys)
		if got, want := entries(&pivot, 10), model[i:min(i+10, len(model))]; !slices.Equal(got, want) {
			t.Fatalf("ascend from %v: got %v, want %v", pivot, got, want)
		}
	}
	// ascend flushed the tail.
	for j := range x.runs {
		r := &x.runs[j]
		if r.size() == 0 {
			t.Fatalf("run %d of %d is empty after a flush", j, len(x.runs))
		}
		if j > 0 && x.runs[j-1].size() <= 2*r.size() && x.runs[j-1].size()+r.size() <= maxMerge && r.head == 0 && x.runs[j-1].head == 0 {
			t.Fatalf("run %d holds %d entries, the run before it %d", j, r.size(), x.runs[j-1].size())
		}
		var prev *dueEntry
		for _, e := range r.e[r.head:] {
			if !x.valid(e) {
				continue
			}
			if prev != nil && !x.less(prev, &e) {
				t.Fatalf("run %d out of order", j)
			}
			prev = &e
		}
	}
	// Runs are settled when made; trims shrink them later.
	total := 0
	for j := range x.runs {
		total += len(x.runs[j].e)
	}
	// Due and ascend flush a tail however short: runs may start small.
	if bound := 2 + bits.Len(uint(min(total, maxMerge))) + 3*total/maxMerge; len(x.runs) > bound {
		t.Fatalf("%d entries in %d runs, want at most %d", total, len(x.runs), bound)
	}
}

// TestSizes guards the sizes the memory and collection costs rest on: a
// record takes 88 bytes of a chunk, 24 of them scanned, its extra fills a
// 176-byte allocation, and an entry of the due index takes 16 bytes.
func TestSizes(t *testing.T) {
	if p, v := unsafe.Sizeof(recPtrs{}), unsafe.Sizeof(recVals{}); p != 24 || v != 64 {
		t.Errorf("a record is %d+%d bytes, want 24+64", p, v)
	}
	if s := unsafe.Sizeof(extra{}); s != 176 {
		t.Errorf("an extra is %d bytes, want 176", s)
	}
	if s := unsafe.Sizeof(dueEntry{}); s != 16 {
		t.Errorf("a due entry is %d bytes, want 16", s)
	}
}

// ascend calls yield with the entries from the first one not less than
// from, in order, until yield returns false.
func (x *index) ascend(from *key, yield func(at int64, ref uint32) bool) {
	var m merge
	x.flush()
	m.add(x, from)
	for k := m.first(); k != nil; k = m.next() {
		if !yield(k.at, k.ref) {
			return
		}
	}
}
