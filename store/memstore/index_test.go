package memstore

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"unsafe"
)

// TestIndex checks the B+tree against a sorted slice through random inserts
// and deletes in several patterns, with its invariants checked throughout.
func TestIndex(t *testing.T) {
	for _, p := range []struct {
		name string
		at   func(rng *rand.Rand, i int) int64
		del  func(rng *rand.Rand, model []entry) int // index of the entry to delete
	}{
		{"random", func(rng *rand.Rand, _ int) int64 { return rng.Int64N(1000) }, randomEntry},
		{"ties", func(rng *rand.Rand, _ int) int64 { return rng.Int64N(3) }, randomEntry},
		{"ascending/queue", func(_ *rand.Rand, i int) int64 { return int64(i) }, func(*rand.Rand, []entry) int { return 0 }},
		{"descending/stack", func(_ *rand.Rand, i int) int64 { return -int64(i) }, func(*rand.Rand, []entry) int { return 0 }},
		{"ascending/random", func(_ *rand.Rand, i int) int64 { return int64(i) }, randomEntry},
	} {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(1, 2))
			var x index
			var model []entry
			seq := 0
			// Grow to 5000 entries, shrink to 0, grow again: every split,
			// share, merge and root change happens.
			if p.name == "ascending/queue" {
				for i := range 5 * order {
					x.insert(entry{int64(-1000 + i), &record{id: "a"}})
				}
				if n := leafCount(&x); n != 5 {
					t.Fatalf("%d ascending inserts made %d leaves, want 5 full ones", 5*order, n)
				}
				x = index{}
			}
			for _, phase := range []struct{ steps, insertPct int }{{8000, 80}, {8000, 10}, {8000, 70}} {
				for range phase.steps {
					if len(model) == 0 || rng.IntN(100) < phase.insertPct {
						seq++
						e := entry{p.at(rng, seq), &record{id: fmt.Sprintf("id%06d", seq), priority: int16(rng.IntN(3) - 1)}}
						x.insert(e)
						i, _ := slices.BinarySearchFunc(model, e, entry.compare)
						model = slices.Insert(model, i, e)
					} else {
						i := p.del(rng, model)
						if !x.delete(model[i]) {
							t.Fatalf("delete of %v: not found", model[i])
						}
						model = slices.Delete(model, i, i+1)
					}
					if seq%97 == 0 {
						check(t, &x, model, rng)
					}
				}
				check(t, &x, model, rng)
			}
			if x.delete(entry{0, &record{id: "absent"}}) {
				t.Error("delete of an absent entry reported true")
			}
		})
	}
}

func leafCount(x *index) int {
	n := x.root
	for n.kids != nil {
		n = n.kids[0]
	}
	count := 0
	for ; n != nil; n = n.next {
		count++
	}
	return count
}

func randomEntry(rng *rand.Rand, model []entry) int { return rng.IntN(len(model)) }

// check compares x with model, including ascend from a random pivot, and
// checks x's invariants.
func check(t *testing.T, x *index, model []entry, rng *rand.Rand) {
	t.Helper()
	var got []entry
	x.ascend(entry{-1 << 62, first}, func(e entry) bool { got = append(got, e); return true })
	if !slices.Equal(got, model) {
		t.Fatalf("index holds %d entries, model %d (or in another order)", len(got), len(model))
	}
	if len(model) > 0 {
		pivot := model[rng.IntN(len(model))]
		var from []entry
		x.ascend(pivot, func(e entry) bool { from = append(from, e); return len(from) < 10 })
		i, _ := slices.BinarySearchFunc(model, pivot, entry.compare)
		if want := model[i:min(i+10, len(model))]; !slices.Equal(from, want) {
			t.Fatalf("ascend from %v: got %v, want %v", pivot, from, want)
		}
	}
	if x.root != nil {
		var leaves []*node
		checkNode(t, x.root, x.root, nil, nil, true, 0, &leaves)
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
// that no pointer is left past the items in use, and that leaves are all at
// one depth; it collects the leaves in order.
func checkNode(t *testing.T, root, n *node, lo, hi *entry, rightEdge bool, depth int, leaves *[]*node) int {
	t.Helper()
	if n != root && (n.n == 0 || n.n < minFill && !rightEdge) {
		t.Fatalf("node at depth %d holds %d items", depth, n.n)
	}
	for i := n.n; i < order; i++ {
		if n.rec[i] != nil || (n.kids != nil && n.kids[i] != nil) {
			t.Fatalf("slot %d past the end still holds a pointer", i)
		}
	}
	in := func(e entry) bool {
		return (lo == nil || lo.compare(e) <= 0) && (hi == nil || e.compare(*hi) < 0)
	}
	if n.kids == nil {
		for i := range n.n {
			if !in(n.item(i)) || (i > 0 && n.item(i-1).compare(n.item(i)) >= 0) {
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
			e := n.item(i)
			if !in(e) {
				t.Fatalf("separator %d outside its bounds", i)
			}
			clo = &e
		}
		if i+1 < n.n {
			e := n.item(i + 1)
			chi = &e
		}
		if i > 0 && n.kids[i].kids != nil && n.kids[i].item(0) != n.item(i) {
			t.Fatalf("inner child %d does not repeat its separator", i)
		}
		d := checkNode(t, root, n.kids[i], clo, chi, rightEdge && i == n.n-1, depth+1, leaves)
		if leafDepth >= 0 && d != leafDepth {
			t.Fatal("leaves at different depths")
		}
		leafDepth = d
	}
	return leafDepth
}

// TestSizes guards the sizes the memory cost rests on: a record fills a
// 96-byte allocation, its extra a 176-byte one, and a node a 1 KiB one.
func TestSizes(t *testing.T) {
	if s := unsafe.Sizeof(record{}); s != 96 {
		t.Errorf("a record is %d bytes, want 96", s)
	}
	if s := unsafe.Sizeof(extra{}); s != 176 {
		t.Errorf("an extra is %d bytes, want 176", s)
	}
	if s := unsafe.Sizeof(node{}); s > 1024 || s <= 1024-16 {
		t.Errorf("a node is %d bytes, want just under 1024", s)
	}
}
