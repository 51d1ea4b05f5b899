package memstore

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"unsafe"
)

// TestIndex checks the B+tree against a sorted slice through random inserts
// and deletes in several patterns, with its invariants checked throughout.
// A deleted entry's slot is freed and reused by the next insert, with
// another ID and priority, as in a store: the separators left behind must
// not depend on the record they were made from.
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
	} {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(1, 2))
			var recs slab
			x := index{recs: &recs}
			var model []key
			seq := 0
			// Grow to 5000 entries, shrink to 0, grow again: every split,
			// share, merge and root change happens.
			if p.name == "ascending/queue" {
				for i := range 5 * order {
					x.insert(newEntry(&recs, int64(-1000+i), "a", 0))
				}
				if n := leafCount(&x); n != 5 {
					t.Fatalf("%d ascending inserts made %d leaves, want 5 full ones", 5*order, n)
				}
				recs, x = slab{}, index{recs: &recs}
			}
			for _, phase := range []struct{ steps, insertPct int }{{8000, 80}, {8000, 10}, {8000, 70}} {
				for range phase.steps {
					if len(model) == 0 || rng.IntN(100) < phase.insertPct {
						seq++
						k := newEntry(&recs, p.at(rng, seq), fmt.Sprintf("id%06d", seq), int16(rng.IntN(3)-1))
						x.insert(k)
						i, _ := slices.BinarySearchFunc(model, *k, compareKeys)
						model = slices.Insert(model, i, *k)
					} else {
						i := p.del(rng, model)
						if !x.delete(&model[i]) {
							t.Fatalf("delete of %v: not found", model[i])
						}
						recs.release(model[i].ref)
						model = slices.Delete(model, i, i+1)
					}
					if seq%97 == 0 {
						check(t, &x, model, rng)
					}
				}
				check(t, &x, model, rng)
			}
			if absent := newEntry(&recs, 0, "absent", 0); x.delete(absent) {
				t.Error("delete of an absent entry reported true")
			}
		})
	}
}

// TestIndexRightEdge empties the last leaf of a tree grown by appends, whose
// parent was made by an append too: the leaf must go, not stay empty.
func TestIndexRightEdge(t *testing.T) {
	var recs slab
	x := index{recs: &recs}
	var model []key
	for i := range order*order + 1 {
		k := newEntry(&recs, int64(i), "a", 0)
		x.insert(k)
		model = append(model, *k)
	}
	last := len(model) - 1
	if !x.delete(&model[last]) {
		t.Fatal("delete of the last entry: not found")
	}
	check(t, &x, model[:last], rand.New(rand.NewPCG(1, 2)))
}

// newEntry stores a record in recs and returns its key at at.
func newEntry(recs *slab, at int64, id string, priority int16) *key {
	i := recs.alloc()
	r := recs.at(i)
	r.id, r.priority = id, priority
	return &key{at: at, id: id, ref: i, priority: priority}
}

func compareKeys(a, b key) int { return a.compare(&b) }

func leafCount(x *index) int {
	n := x.root
	for n.in != nil {
		n = n.in.kids[0]
	}
	count := 0
	for ; n != nil; n = n.next {
		count++
	}
	return count
}

func randomEntry(rng *rand.Rand, model []key) int { return rng.IntN(len(model)) }

// check compares x with model, including ascend from a random pivot, and
// checks x's invariants.
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
	if x.root != nil {
		var leaves []*node
		checkNode(t, x, x.root, nil, nil, true, 0, &leaves)
		for i, l := range leaves {
			var next *node
			if i+1 < len(leaves) {
				next = leaves[i+1]
			}
			if l.next != next {
				t.Fatalf("leaf %d links to the wrong leaf", i)
			}
		}
	}
}

// checkNode checks that every entry under n lies in [lo, hi) (nil bounds are
// open), that every node but the root is at least half full unless it is on
// the right edge (where appends leave nodes of one item) and none is empty,
// that no inner node has one child but the root, that no pointer is left
// past the items in use, and that leaves are all at one depth; it collects
// the leaves in order.
func checkNode(t *testing.T, x *index, n *node, lo, hi *key, rightEdge bool, depth int, leaves *[]*node) int {
	t.Helper()
	if n != x.root && (n.n == 0 || n.n < minFill && !rightEdge || n.n == 1 && n.in != nil) {
		t.Fatalf("node at depth %d holds %d items", depth, n.n)
	}
	for i := n.n; n.in != nil && i < order; i++ {
		if n.in.kids[i] != nil || n.in.id[i] != "" {
			t.Fatalf("slot %d past the end still holds a pointer", i)
		}
	}
	in := func(k *key) bool {
		return (lo == nil || lo.compare(k) <= 0) && (hi == nil || k.compare(hi) < 0)
	}
	if n.in == nil {
		for i := range n.n {
			k, prev := x.item(n, i), x.item(n, max(i-1, 0))
			if !in(&k) || (i > 0 && prev.compare(&k) >= 0) {
				t.Fatalf("leaf entry %d out of order or outside its bounds", i)
			}
		}
		*leaves = append(*leaves, n)
		return depth
	}
	leafDepth := -1
	for i := range n.n {
		clo, chi := lo, hi
		if i > 0 {
			k := x.item(n, i)
			if !in(&k) {
				t.Fatalf("separator %d outside its bounds", i)
			}
			clo = &k
		}
		if i+1 < n.n {
			k := x.item(n, i+1)
			chi = &k
		}
		if kid := n.in.kids[i]; i > 0 && kid.in != nil && x.item(kid, 0) != x.item(n, i) {
			t.Fatalf("inner child %d does not repeat its separator", i)
		}
		d := checkNode(t, x, n.in.kids[i], clo, chi, rightEdge && i == n.n-1, depth+1, leaves)
		if leafDepth >= 0 && d != leafDepth {
			t.Fatal("leaves at different depths")
		}
		leafDepth = d
	}
	return leafDepth
}

// TestSizes guards the sizes the memory and collection costs rest on: a
// record takes 88 bytes of a chunk, 24 of them scanned, its extra fills a
// 176-byte allocation, and a node, with its allocation header, a 1 KiB one.
func TestSizes(t *testing.T) {
	if p, v := unsafe.Sizeof(recPtrs{}), unsafe.Sizeof(recVals{}); p != 24 || v != 64 {
		t.Errorf("a record is %d+%d bytes, want 24+64", p, v)
	}
	if s := unsafe.Sizeof(extra{}); s != 176 {
		t.Errorf("an extra is %d bytes, want 176", s)
	}
	if s := unsafe.Sizeof(node{}) + 8; s > 1024 || s <= 1024-16 {
		t.Errorf("a node is %d bytes with its header, want just under 1024", s)
	}
}

// ascend calls yield with the entries from the first one not less than
// from, in order, until yield returns false.
func (x *index) ascend(from *key, yield func(at int64, ref uint32) bool) {
	for n, i := x.seek(from); n != nil; n, i = n.next, 0 {
		for ; i < n.n; i++ {
			if !yield(n.at[i], n.ref[i]) {
				return
			}
		}
	}
}
