package memstore

import "strings"

// entry is a trigger's place in the due order: at is its due time, or its
// lease deadline while it runs. Priority and ID, which order entries with
// the same at, never change, so they are read from the record.
type entry struct {
	at int64
	r  *record
}

// compare orders entries by at, then priority (higher first), then ID.
func (a entry) compare(b entry) int {
	switch {
	case a.at < b.at:
		return -1
	case a.at > b.at:
		return 1
	case a.r == b.r:
		return 0
	case a.r.priority != b.r.priority:
		return int(b.r.priority) - int(a.r.priority)
	}
	return strings.Compare(a.r.id, b.r.id)
}

// index is a B+tree of entries: the due index. Entries live in the leaves,
// which are linked in order for iteration; an inner node's item i holds
// child i and the least entry that may be stored under it. An inner node's
// item 0 repeats the item that points to it in its parent (and is never
// compared), so leaves and inner nodes split, merge and share items the
// same way.
//
// It is specialised rather than generic so that a comparison is inlined, a
// node's keys lie in one array and a node fills one 1 KiB allocation: at a
// million entries this makes claims and saves faster and the index smaller
// than with a general B-tree package.
type index struct {
	root *node
}

// order is the most items a node holds: 62 makes a node 1016 bytes.
const (
	order   = 62
	minFill = order / 2
)

type node struct {
	n    int
	at   [order]int64
	rec  [order]*record
	kids *[order]*node // nil in a leaf
	next *node         // the next leaf, in a leaf
}

func (n *node) item(i int) entry { return entry{n.at[i], n.rec[i]} }

func (n *node) set(i int, e entry) { n.at[i], n.rec[i] = e.at, e.r }

// search returns the first item in [lo, n.n) not less than e. It reads a
// record only to break a tie.
func (n *node) search(lo int, e entry) int {
	hi := n.n
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if at := n.at[m]; at < e.at || at == e.at && n.item(m).compare(e) < 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// child returns the index of the child of inner node n that holds e: the
// last one whose least entry is not above e.
func (n *node) child(e entry) int {
	i := n.search(1, e)
	if i < n.n && n.item(i).compare(e) == 0 {
		return i
	}
	return i - 1
}

// insertAt puts item e (with child kid in an inner node) at i, shifting the
// items after it. n must not be full.
func (n *node) insertAt(i int, e entry, kid *node) {
	copy(n.at[i+1:n.n+1], n.at[i:n.n])
	copy(n.rec[i+1:n.n+1], n.rec[i:n.n])
	n.set(i, e)
	if n.kids != nil {
		copy(n.kids[i+1:n.n+1], n.kids[i:n.n])
		n.kids[i] = kid
	}
	n.n++
}

// removeAt removes item i.
func (n *node) removeAt(i int) {
	copy(n.at[i:], n.at[i+1:n.n])
	copy(n.rec[i:], n.rec[i+1:n.n])
	n.n--
	n.rec[n.n] = nil
	if n.kids != nil {
		copy(n.kids[i:], n.kids[i+1:n.n+1])
		n.kids[n.n] = nil
	}
}

// moveLeft moves the first k items of r to the end of l, its left
// neighbour.
func moveLeft(l, r *node, k int) {
	copy(l.at[l.n:], r.at[:k])
	copy(l.rec[l.n:], r.rec[:k])
	copy(r.at[:], r.at[k:r.n])
	copy(r.rec[:], r.rec[k:r.n])
	clear(r.rec[r.n-k : r.n])
	if l.kids != nil {
		copy(l.kids[l.n:], r.kids[:k])
		copy(r.kids[:], r.kids[k:r.n])
		clear(r.kids[r.n-k : r.n])
	}
	l.n, r.n = l.n+k, r.n-k
}

// moveRight moves the last k items of l to the front of r, its right
// neighbour.
func moveRight(l, r *node, k int) {
	copy(r.at[k:], r.at[:r.n])
	copy(r.rec[k:], r.rec[:r.n])
	copy(r.at[:], l.at[l.n-k:l.n])
	copy(r.rec[:], l.rec[l.n-k:l.n])
	clear(l.rec[l.n-k : l.n])
	if l.kids != nil {
		copy(r.kids[k:], r.kids[:r.n])
		copy(r.kids[:], l.kids[l.n-k:l.n])
		clear(l.kids[l.n-k : l.n])
	}
	l.n, r.n = l.n-k, r.n+k
}

// sibling returns a new empty node of n's kind, linked after n if a leaf.
func (n *node) sibling() *node {
	s := &node{}
	if n.kids != nil {
		s.kids = new([order]*node)
	} else {
		s.next, n.next = n.next, s
	}
	return s
}

// insert adds e, which must not be in the index.
func (x *index) insert(e entry) {
	if x.root == nil {
		x.root = &node{}
	}
	sep, right := x.root.insert(e, true)
	if right == nil {
		return
	}
	root := &node{n: 2, kids: new([order]*node)}
	root.set(0, x.root.item(0))
	root.set(1, sep)
	root.kids[0], root.kids[1] = x.root, right
	x.root = root
}

// insert adds e under n, which is on the right edge of the tree if
// rightmost. If n splits, it returns the new right half and the least entry
// under it.
func (n *node) insert(e entry, rightmost bool) (entry, *node) {
	var kid *node
	var i int
	if n.kids == nil {
		i = n.search(0, e)
	} else {
		i = n.child(e)
		sep, right := n.kids[i].insert(e, rightmost && i == n.n-1)
		if right == nil {
			return entry{}, nil
		}
		e, kid, i = sep, right, i+1
	}
	if n.n < order {
		n.insertAt(i, e, kid)
		return entry{}, nil
	}
	right := n.sibling()
	switch {
	case rightmost && i == order:
		// Appending, as when due times ascend: leave n full. Only nodes
		// on the right edge are ever less than half full.
		right.insertAt(0, e, kid)
	case i <= order/2:
		moveRight(n, right, order-order/2)
		n.insertAt(i, e, kid)
	default:
		moveRight(n, right, order-order/2)
		right.insertAt(i-order/2, e, kid)
	}
	return right.item(0), right
}

// delete removes e and reports whether it was there.
func (x *index) delete(e entry) bool {
	if x.root == nil || !x.root.delete(e) {
		return false
	}
	if x.root.kids != nil && x.root.n == 1 {
		x.root = x.root.kids[0]
	}
	return true
}

// delete removes e from under n and reports whether it was there.
func (n *node) delete(e entry) bool {
	if n.kids == nil {
		i := n.search(0, e)
		if i == n.n || n.rec[i] != e.r {
			return false
		}
		n.removeAt(i)
		return true
	}
	i := n.child(e)
	if !n.kids[i].delete(e) {
		return false
	}
	if n.kids[i].n < minFill && n.n > 1 {
		n.rebalance(i)
	}
	return true
}

// rebalance refills child i of n, which has too few items, from a neighbour:
// it merges the two if they fit in one node, or shares their items evenly.
func (n *node) rebalance(i int) {
	if i == n.n-1 {
		i--
	}
	l, r := n.kids[i], n.kids[i+1]
	if l.n+r.n <= order {
		moveLeft(l, r, r.n)
		if l.kids == nil {
			l.next = r.next
		}
		n.removeAt(i + 1)
		return
	}
	if half := (l.n + r.n) / 2; l.n < half {
		moveLeft(l, r, half-l.n)
	} else {
		moveRight(l, r, l.n-half)
	}
	n.set(i+1, r.item(0))
}

// ascend calls yield with the entries from the first one not less than
// from, in order, until yield returns false.
func (x *index) ascend(from entry, yield func(entry) bool) {
	n := x.root
	if n == nil {
		return
	}
	for n.kids != nil {
		n = n.kids[n.child(from)]
	}
	for i := n.search(0, from); n != nil; n, i = n.next, 0 {
		for ; i < n.n; i++ {
			if !yield(n.item(i)) {
				return
			}
		}
	}
}
