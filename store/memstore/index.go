package memstore

import (
	"cmp"
	"strings"
)

// key is a place in the due order: a due time (or a lease deadline while
// the trigger runs), then priority (higher first), then ID. ref is the
// record the key is made from, or noRef for a place that is no record's
// (a Due cursor, a separator in the index).
type key struct {
	at       int64
	id       string
	ref      uint32
	priority int16
}

// compare orders keys by at, then priority (higher first), then ID.
func (a *key) compare(b *key) int {
	switch {
	case a.at != b.at:
		return cmp.Compare(a.at, b.at)
	case a.priority != b.priority:
		return int(b.priority) - int(a.priority)
	}
	return strings.Compare(a.id, b.id)
}

// key returns the key of record i at its due time.
func (r record) key(i uint32) key {
	return key{at: r.due, id: r.id, ref: i, priority: r.priority}
}

// index is a B+tree: the due index. Its entries live in the leaves, which
// are linked in order for iteration; an entry is a due time and a ref, and
// the priority and ID that order entries with the same due time are read
// from the record. An inner node's item i holds child i and a separator: a
// key not above any entry under child i, and above every entry under child
// i-1. An inner node's item 0 repeats the item that points to it in its
// parent (and is never compared), so leaves and inner nodes split, merge and
// share items the same way.
//
// A separator keeps its own copy of the key it was made from, ID included:
// the record may be deleted, its slot reused, or its priority changed while
// the separator is still in use. The inner nodes are about 1 in 60 nodes,
// so their strings cost the garbage collector little; the leaves, which
// hold the entries, have no pointers but their links.
//
// It is specialised rather than generic so that a comparison is inlined, a
// node's keys lie in one array and a leaf fills one 1 KiB allocation: at a
// million entries this makes claims and saves faster and the index smaller
// than with a general B-tree package.
type index struct {
	recs *slab
	root *node
}

// order is the most items a node holds: 82 makes a node 1008 bytes, 1016
// with the 8-byte header Go puts before an object of more than 512 bytes
// that holds pointers, so that it fills a 1 KiB allocation (83 took one of
// 1152 bytes).
const (
	order   = 82
	minFill = order / 2
)

// node is a leaf, or the first part of an inner node. What is read first
// comes first: the count and the links, which are also the only pointers a
// leaf holds, so the garbage collector looks at two words of it.
type node struct {
	n    int
	in   *inner // nil in a leaf
	next *node  // the next leaf, in a leaf
	at   [order]int64
	ref  [order]uint32 // the records of a leaf's entries; unused in an inner node
}

// inner holds the children of an inner node and its separators' keys but
// for their due times, which are in node.at.
type inner struct {
	kids     [order]*node
	id       [order]string
	priority [order]int16
}

// item returns the key of item i of n (with ref noRef in an inner node).
func (x *index) item(n *node, i int) key {
	if n.in != nil {
		return key{at: n.at[i], id: n.in.id[i], ref: noRef, priority: n.in.priority[i]}
	}
	r := x.recs.at(n.ref[i])
	return key{at: n.at[i], id: r.id, ref: n.ref[i], priority: r.priority}
}

// set sets item i of n to k, and its child to kid in an inner node.
func (n *node) set(i int, k *key, kid *node) {
	n.at[i] = k.at
	if n.in == nil {
		n.ref[i] = k.ref
		return
	}
	n.in.id[i], n.in.priority[i], n.in.kids[i] = k.id, k.priority, kid
}

// search returns the first item in [lo, n.n) of n not less than k. It reads
// a record only to break a tie.
//
// A key due after the last item goes after it at once: saves in ascending
// due order insert there, on the right edge of the tree, and with one
// index per shard, the right edges of 16 trees no longer stay in the
// processor's first-level cache for the scan below to read them cheaply.
//
// It first skips the runs of 8 items that lie wholly before k's due time,
// reading the last of each run: each run fills a cache line, and as these
// reads do not depend on one another the processor issues them together,
// so a node that is not in cache costs about one miss, where each step of
// a binary search waited for the last. Then it steps through the run that
// holds k's due time, and breaks ties by binary search.
func (x *index) search(n *node, lo int, k *key) int {
	if lo < n.n && n.at[n.n-1] < k.at {
		return n.n // after the last item, as when due times ascend
	}
	for j := lo + 7; j < n.n && n.at[j] < k.at; j += 8 {
		lo = j + 1
	}
	for lo < n.n && n.at[lo] < k.at {
		lo++
	}
	hi := lo
	for hi < n.n && n.at[hi] == k.at {
		hi++
	}
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if at := n.at[m]; at < k.at || at == k.at && x.tie(n, m, k) < 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// tie compares item i of n with k, which has the same due time.
func (x *index) tie(n *node, i int, k *key) int {
	var id string
	var priority int16
	if n.in != nil {
		id, priority = n.in.id[i], n.in.priority[i]
	} else {
		if n.ref[i] == k.ref {
			return 0
		}
		r := x.recs.at(n.ref[i])
		id, priority = r.id, r.priority
	}
	if priority != k.priority {
		return int(k.priority) - int(priority)
	}
	return strings.Compare(id, k.id)
}

// child returns the index of the child of inner node n that holds k: the
// last one whose separator is not above k.
func (x *index) child(n *node, k *key) int {
	i := x.search(n, 1, k)
	if i < n.n && n.at[i] == k.at && x.tie(n, i, k) == 0 {
		return i
	}
	return i - 1
}

// insertAt puts k (with child kid in an inner node) at i, shifting the items
// after it. n must not be full.
func (n *node) insertAt(i int, k *key, kid *node) {
	copy(n.at[i+1:n.n+1], n.at[i:n.n])
	if n.in == nil {
		copy(n.ref[i+1:n.n+1], n.ref[i:n.n])
	} else {
		copy(n.in.kids[i+1:n.n+1], n.in.kids[i:n.n])
		copy(n.in.id[i+1:n.n+1], n.in.id[i:n.n])
		copy(n.in.priority[i+1:n.n+1], n.in.priority[i:n.n])
	}
	n.set(i, k, kid)
	n.n++
}

// removeAt removes item i.
func (n *node) removeAt(i int) {
	copy(n.at[i:], n.at[i+1:n.n])
	n.n--
	if n.in == nil {
		copy(n.ref[i:], n.ref[i+1:n.n+1])
		return
	}
	copy(n.in.kids[i:], n.in.kids[i+1:n.n+1])
	copy(n.in.id[i:], n.in.id[i+1:n.n+1])
	copy(n.in.priority[i:], n.in.priority[i+1:n.n+1])
	n.in.kids[n.n], n.in.id[n.n] = nil, ""
}

// moveLeft moves the first k items of r to the end of l, its left
// neighbour.
func moveLeft(l, r *node, k int) {
	copy(l.at[l.n:], r.at[:k])
	copy(r.at[:], r.at[k:r.n])
	if l.in == nil {
		copy(l.ref[l.n:], r.ref[:k])
		copy(r.ref[:], r.ref[k:r.n])
	} else {
		copy(l.in.kids[l.n:], r.in.kids[:k])
		copy(l.in.id[l.n:], r.in.id[:k])
		copy(l.in.priority[l.n:], r.in.priority[:k])
		copy(r.in.kids[:], r.in.kids[k:r.n])
		copy(r.in.id[:], r.in.id[k:r.n])
		copy(r.in.priority[:], r.in.priority[k:r.n])
		clear(r.in.kids[r.n-k : r.n])
		clear(r.in.id[r.n-k : r.n])
	}
	l.n, r.n = l.n+k, r.n-k
}

// moveRight moves the last k items of l to the front of r, its right
// neighbour.
func moveRight(l, r *node, k int) {
	copy(r.at[k:], r.at[:r.n])
	copy(r.at[:], l.at[l.n-k:l.n])
	if l.in == nil {
		copy(r.ref[k:], r.ref[:r.n])
		copy(r.ref[:], l.ref[l.n-k:l.n])
	} else {
		copy(r.in.kids[k:], r.in.kids[:r.n])
		copy(r.in.id[k:], r.in.id[:r.n])
		copy(r.in.priority[k:], r.in.priority[:r.n])
		copy(r.in.kids[:], l.in.kids[l.n-k:l.n])
		copy(r.in.id[:], l.in.id[l.n-k:l.n])
		copy(r.in.priority[:], l.in.priority[l.n-k:l.n])
		clear(l.in.kids[l.n-k : l.n])
		clear(l.in.id[l.n-k : l.n])
	}
	l.n, r.n = l.n-k, r.n+k
}

// sibling returns a new empty node of n's kind, linked after n if a leaf.
func (n *node) sibling() *node {
	s := &node{}
	if n.in != nil {
		s.in = new(inner)
	} else {
		s.next, n.next = n.next, s
	}
	return s
}

// insert adds k, made from a record, which must not be in the index.
func (x *index) insert(k *key) {
	if x.root == nil {
		x.root = &node{}
	}
	sep, right := x.insertUnder(x.root, k, true)
	if right == nil {
		return
	}
	root := &node{n: 2, in: new(inner)}
	least := x.item(x.root, 0)
	root.set(0, &least, x.root)
	root.set(1, &sep, right)
	x.root = root
}

// insertUnder adds k under n, which is on the right edge of the tree if
// rightmost. If n splits, it returns the new right half and a separator for
// it: its least key.
func (x *index) insertUnder(n *node, k *key, rightmost bool) (key, *node) {
	var kid *node
	var i int
	if n.in == nil {
		i = x.search(n, 0, k)
	} else {
		i = x.child(n, k)
		sep, right := x.insertUnder(n.in.kids[i], k, rightmost && i == n.n-1)
		if right == nil {
			return key{}, nil
		}
		k, kid, i = &sep, right, i+1
	}
	if n.n < order {
		n.insertAt(i, k, kid)
		return key{}, nil
	}
	right := n.sibling()
	switch {
	case rightmost && i == order && n.in == nil:
		// Appending, as when due times ascend: leave n full. Only nodes
		// on the right edge are ever less than half full.
		right.insertAt(0, k, kid)
	case rightmost && i == order:
		// The same, but an inner node keeps two children, so that the
		// right edge never holds a node with one child: one whose child
		// emptied could not be merged with a neighbour.
		moveRight(n, right, 1)
		right.insertAt(1, k, kid)
	case i <= order/2:
		moveRight(n, right, order-order/2)
		n.insertAt(i, k, kid)
	default:
		moveRight(n, right, order-order/2)
		right.insertAt(i-order/2, k, kid)
	}
	return x.item(right, 0), right
}

// delete removes k, made from a record, and reports whether it was there.
func (x *index) delete(k *key) bool {
	if x.root == nil || !x.deleteUnder(x.root, k) {
		return false
	}
	if x.root.in != nil && x.root.n == 1 {
		x.root = x.root.in.kids[0]
	}
	return true
}

// deleteUnder removes k from under n and reports whether it was there.
func (x *index) deleteUnder(n *node, k *key) bool {
	if n.in == nil {
		i := x.search(n, 0, k)
		if i == n.n || n.ref[i] != k.ref {
			return false
		}
		n.removeAt(i)
		return true
	}
	i := x.child(n, k)
	if !x.deleteUnder(n.in.kids[i], k) {
		return false
	}
	if n.in.kids[i].n < minFill && n.n > 1 {
		x.rebalance(n, i)
	}
	return true
}

// rebalance refills child i of n, which has too few items, from a neighbour:
// it merges the two if they fit in one node, or shares their items evenly.
func (x *index) rebalance(n *node, i int) {
	if i == n.n-1 {
		i--
	}
	l, r := n.in.kids[i], n.in.kids[i+1]
	if l.n+r.n <= order {
		moveLeft(l, r, r.n)
		if l.in == nil {
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
	sep := x.item(r, 0)
	n.set(i+1, &sep, r)
}

// seek returns the leaf and the place in it of the first entry not less
// than from: a place past the leaf's last entry stands for the next leaf's
// first. The leaf is nil in an empty index.
func (x *index) seek(from *key) (*node, int) {
	n := x.root
	if n == nil {
		return nil, 0
	}
	for n.in != nil {
		n = n.in.kids[x.child(n, from)]
	}
	return n, x.search(n, 0, from)
}

// merge ascends several indexes together, as one: Due merges the due
// indexes of the shards with it. It keeps a cursor in each index that has
// entries left, and a min-heap of their numbers by the key of the entry
// each is at: moving a cursor's number in the heap moves one byte, not the
// cursor.
type merge struct {
	cs [nShards]mcursor
	h  []uint8
}

// mcursor is a place in an index and the key of the entry there.
type mcursor struct {
	k key
	x *index
	n *node
	i int
}

// load sets c.k to the entry at c's place, moving on to the next leaf at
// the end of one, and reports whether there is one.
func (c *mcursor) load() bool {
	for c.n != nil && c.i == c.n.n {
		c.n, c.i = c.n.next, 0
	}
	if c.n == nil {
		return false
	}
	c.k = c.x.item(c.n, c.i)
	return true
}

// less reports whether the entry of the cursor at place a of the heap comes
// before that of the cursor at place b.
func (m *merge) less(a, b int) bool {
	return m.cs[m.h[a]].k.compare(&m.cs[m.h[b]].k) < 0
}

// add adds the entries of x from the first not less than from. It is
// called at most nShards times.
func (m *merge) add(x *index, from *key) {
	c := &m.cs[len(m.h)]
	*c = mcursor{x: x}
	if c.n, c.i = x.seek(from); !c.load() {
		return
	}
	m.h = append(m.h, uint8(len(m.h)))
	for j := len(m.h) - 1; j > 0; {
		p := (j - 1) / 2
		if !m.less(j, p) {
			break
		}
		m.h[p], m.h[j] = m.h[j], m.h[p]
		j = p
	}
}

// first returns the least entry's key, or nil if there is none. The key is
// valid until the next call of next.
func (m *merge) first() *key {
	if len(m.h) == 0 {
		return nil
	}
	return &m.cs[m.h[0]].k
}

// next moves past the least entry and returns the key of the one after, as
// first does.
func (m *merge) next() *key {
	c := &m.cs[m.h[0]]
	if c.i++; !c.load() {
		last := len(m.h) - 1
		m.h[0] = m.h[last]
		m.h = m.h[:last]
	}
	for j := 0; ; {
		l, least := 2*j+1, j
		if l < len(m.h) && m.less(l, least) {
			least = l
		}
		if l+1 < len(m.h) && m.less(l+1, least) {
			least = l + 1
		}
		if least == j {
			break
		}
		m.h[j], m.h[least] = m.h[least], m.h[j]
		j = least
	}
	return m.first()
}
