package memstore

import (
	"cmp"
	"slices"
	"sort"
	"strings"
)

// key is a place in the due order: a due time (or a lease deadline while
// the trigger runs), then priority (higher first), then ID. ref is the
// record the key is made from, or noRef for a place that is no record's
// (a Due cursor).
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

// index is the due index of a shard. It is built for the two calls that
// come once per trigger, a Save that adds an entry and a claim that takes
// it out, at any due time; Due, which reads it in order, comes once per
// page of a scan.
//
// It is log-structured. An insert appends an entry to a short unsorted
// tail; a full tail is sorted into a run, and runs are merged, the newest
// two at a time, until each run holds more than twice the entries of the
// next or a merge would make more than maxMerge entries, so that a shard has
// about log2(n/tailLen) runs, and one more for each maxMerge entries past
// the first, and each entry is copied about log2(maxMerge/tailLen) times in
// all.
// Every access is a sequential one: where a B+tree insert read a random
// leaf of a million entries (a cache miss or two, and most of the
// instructions of a Save), an insert here writes the tail's end, and a
// merge streams through memory.
//
// A delete writes nothing to the runs: the index keeps a generation for
// each record, handed out anew by every insert, and an entry counts only
// while its generation is its record's. Stale entries are dropped where
// they are met: when a tail is sorted, when runs are merged, and when
// they reach the head of a run. A delete looks at the head of each run, as
// claims mostly take the earliest entries, and trims the run it finds its
// entry at; Due trims what it passes at the heads of runs. The other
// deletes, of triggers taken out of order (canceled, deleted, fired early),
// are counted, and once they could be half of what the index holds, every
// run is compacted: a process that schedules a timeout an hour ahead for
// each request and cancels it when the request ends keeps no more than
// twice its live entries.
//
// An entry keeps its due time and the record's ref and generation; the
// priority and ID that order entries due at the same instant are read from
// the record. A live entry's key never changes (a change of due time or
// priority goes through delete and insert), and a comparison of two
// entries due at the same instant is only made once both are known live,
// so every run is in order.
//
// Generations are 32-bit and wrap: an entry left stale through four
// billion inserts into its shard could match its record again. Due also
// checks an entry's due time against its record's, so such an entry is
// at worst a second copy of a live one, which a claim refuses.
type index struct {
	recs *slab
	// gens holds the generation of each record's entry, by ref, or 0 for a
	// record not in the index. It is apart from the records so that
	// checking entries reads 4 bytes each, 16 to a cache line.
	gens []uint32
	gen  uint32     // the last generation handed out
	tail []dueEntry // unsorted, in the order of insertion
	runs []run      // sorted; see settle for their lengths
	// outOfOrder counts the deletes since the last compaction that
	// trimmed nothing: an upper bound of the stale entries held.
	outOfOrder int
	// spare is the array of a run merged into another, kept for the next
	// run made: merges then allocate nothing once a shard has grown, and
	// the collector is not run more often by their copies.
	spare []dueEntry
}

// dueEntry is an entry of the index: a due time, and the record and
// generation it was made for.
type dueEntry struct {
	at  int64
	ref uint32
	gen uint32
}

// run is a sorted run of entries. Those before head are gone.
type run struct {
	e    []dueEntry
	head int
}

// tailLen is how many entries the tail takes before it is sorted into a
// run: enough that runs start long and are merged a few times, few enough
// that a sort under a shard's lock takes microseconds.
const tailLen = 1024

// maxMerge is the most entries a merge makes: merging two runs of random
// due times takes about 40 ns an entry under the shard's lock (a branch
// mispredicted for every other entry), so runs of more entries are left
// as they are, and a shard of many entries has a run for each maxMerge of
// them. A million triggers in 16 shards make 4 to 8 such runs a shard.
const maxMerge = 1 << 14

// size returns how many entries r holds, stale ones included.
func (r *run) size() int { return len(r.e) - r.head }

// valid reports whether e is its record's entry; stale is its opposite.
func (x *index) valid(e dueEntry) bool { return x.gens[e.ref] == e.gen }
func (x *index) stale(e dueEntry) bool { return !x.valid(e) }

// insert adds record i, due at at, which must not be in the index.
func (x *index) insert(i uint32, at int64) {
	for int(i) >= len(x.gens) {
		x.gens = append(x.gens, 0)
	}
	if x.gen++; x.gen == 0 {
		x.gen = 1
	}
	x.gens[i] = x.gen
	x.tail = append(x.tail, dueEntry{at: at, ref: i, gen: x.gen})
	if len(x.tail) >= tailLen {
		x.flush()
	}
}

// delete takes record i, which must be in the index, out of it.
func (x *index) delete(i uint32) {
	if int(i) >= len(x.gens) {
		return
	}
	g := x.gens[i]
	x.gens[i] = 0
	if n := len(x.tail) - 1; n >= 0 && x.tail[n].ref == i && x.tail[n].gen == g {
		x.tail = x.tail[:n] // inserted last: as when a record is moved twice
		return
	}
	for j := range x.runs {
		r := &x.runs[j]
		if r.head < len(r.e) && r.e[r.head].ref == i && r.e[r.head].gen == g {
			x.trim(r)
			return
		}
	}
	if x.outOfOrder++; x.outOfOrder > tailLen && 2*x.outOfOrder > x.held() {
		x.compact()
	}
}

// held returns how many entries x holds, stale ones included.
func (x *index) held() int {
	n := len(x.tail)
	for j := range x.runs {
		n += x.runs[j].size()
	}
	return n
}

// compact drops every stale entry, in place: it reads each entry once, as
// many as the deletes counted since the last compaction, or twice as many.
func (x *index) compact() {
	x.tail = slices.DeleteFunc(x.tail, x.stale)
	for j := range x.runs {
		r := &x.runs[j]
		r.e = slices.DeleteFunc(r.e[r.head:], x.stale)
		r.head = 0
	}
	x.runs = slices.DeleteFunc(x.runs, func(r run) bool { return r.size() == 0 })
	x.outOfOrder = 0
	x.settle()
}

// trim moves r's head past the stale entries there.
func (x *index) trim(r *run) {
	r.head = x.nextLive(r.e, r.head)
}

// less reports whether live entry a comes before live entry b.
func (x *index) less(a, b *dueEntry) bool {
	return a.at < b.at || a.at == b.at && x.tie(*a, *b) < 0
}

// tie orders two live entries due at the same instant, by the priority and
// ID of their records.
func (x *index) tie(a, b dueEntry) int {
	ra, rb := x.recs.at(a.ref), x.recs.at(b.ref)
	if ra.priority != rb.priority {
		return int(rb.priority) - int(ra.priority)
	}
	return strings.Compare(ra.id, rb.id)
}

// flush sorts the live entries of the tail into a new run, drops the runs
// trimmed empty, and settles the runs.
func (x *index) flush() {
	live := slices.DeleteFunc(x.tail, x.stale)
	if len(live) > 0 {
		x.runs = append(x.runs, run{e: x.sorted(live, x.take(len(live)))})
	}
	x.tail = x.tail[:0]
	x.runs = slices.DeleteFunc(x.runs, func(r run) bool {
		if r.size() == 0 {
			x.recycle(r.e)
			return true
		}
		return false
	})
	x.settle()
}

// settle merges runs next to each other until each holds more than twice
// the entries of the next, or a merge would make more than maxMerge
// entries. After a flush only the newest runs can need it; after a
// compaction, any.
func (x *index) settle() {
	for j := len(x.runs) - 1; j >= 1; {
		a, b := &x.runs[j-1], &x.runs[j]
		switch {
		case a.size() > 2*b.size():
			j--
			continue
		case a.size() > 0 && b.size() > 0 && a.e[len(a.e)-1].at < b.e[b.head].at:
			// b comes wholly after a, as when due times ascend: append
			// it, in a's array if there is room, rather than merge.
			a.e = append(a.e, b.e[b.head:]...)
			x.recycle(b.e)
		case a.size()+b.size() > maxMerge:
			j--
			continue
		default:
			ae, be := a.e, b.e
			*a = x.merge(a, b)
			x.recycle(ae)
			x.recycle(be)
		}
		x.runs = slices.Delete(x.runs, j, j+1)
		// The run at j-1 grew: it may now hold too few entries for the
		// run before it, never too many for the one after, which the loop
		// has settled.
		j--
	}
}

// merge returns the live entries of a and b as one run.
func (x *index) merge(a, b *run) run {
	ae, be := a.e[a.head:], b.e[b.head:]
	out := x.take(len(ae) + len(be))
	i, j := x.nextLive(ae, 0), x.nextLive(be, 0)
	for i < len(ae) && j < len(be) {
		if x.less(&be[j], &ae[i]) {
			out = append(out, be[j])
			j = x.nextLive(be, j+1)
		} else {
			out = append(out, ae[i])
			i = x.nextLive(ae, i+1)
		}
	}
	return run{e: x.appendLive(x.appendLive(out, ae[i:]), be[j:])}
}

// appendLive appends the live entries of e to out.
func (x *index) appendLive(out, e []dueEntry) []dueEntry {
	for _, e := range e {
		if x.valid(e) {
			out = append(out, e)
		}
	}
	return out
}

// nextLive returns the place of the first live entry of e from i, or
// len(e).
func (x *index) nextLive(e []dueEntry, i int) int {
	for i < len(e) && !x.valid(e[i]) {
		i++
	}
	return i
}

// take returns an empty slice with room for n entries: the spare array if
// it has the room.
func (x *index) take(n int) []dueEntry {
	if cap(x.spare) >= n {
		out := x.spare[:0]
		x.spare = nil
		return out
	}
	return make([]dueEntry, 0, n)
}

// recycle keeps e's array as the spare if it is larger than the spare.
func (x *index) recycle(e []dueEntry) {
	if cap(e) > cap(x.spare) {
		x.spare = e
	}
}

// sorted returns the entries of live sorted by key, in out, which has room
// for them; live is used as scratch. It sorts by due time with a radix
// sort, a byte at a time from the lowest, skipping the bytes in which no
// due time differs from the first (at most five passes for due times
// within a day), and then the entries due at the same instant by their
// records. A comparison sort of random due times mispredicted a branch at
// about every other comparison (callgrind counted 4.3 a Schedule); this
// sort mispredicts almost none, for about as many instructions.
func (x *index) sorted(live, out []dueEntry) []dueEntry {
	out = out[:len(live)]
	// ord maps a due time to an unsigned integer in the same order.
	ord := func(e *dueEntry) uint64 { return uint64(e.at) ^ 1<<63 }
	var vary uint64
	for i := range live {
		vary |= ord(&live[i]) ^ ord(&live[0])
	}
	src, dst := live, out
	var count [256]int
	for shift := uint(0); shift < 64; shift += 8 {
		if vary>>shift&0xff == 0 {
			continue
		}
		clear(count[:])
		for i := range src {
			count[ord(&src[i])>>shift&0xff]++
		}
		sum := 0
		for b, c := range count {
			count[b], sum = sum, sum+c
		}
		for i := range src {
			b := ord(&src[i]) >> shift & 0xff
			dst[count[b]] = src[i]
			count[b]++
		}
		src, dst = dst, src
	}
	if len(out) > 0 && &src[0] != &out[0] {
		copy(out, src)
	}
	for i := 0; i < len(out); {
		j := i + 1
		for j < len(out) && out[j].at == out[i].at {
			j++
		}
		if j-i > 1 {
			slices.SortFunc(out[i:j], x.tie)
		}
		i = j
	}
	return out
}

// merge ascends several indexes together, as one: Due merges the due
// indexes of the shards with it. It keeps a cursor in each run that has
// entries left, and a min-heap of their numbers by the key of the entry
// each is at: moving a cursor's number in the heap moves two bytes, not
// the cursor.
type merge struct {
	cs []mcursor
	h  []uint16
}

// mcursor is a place in a run of an index and the key of the entry there.
type mcursor struct {
	k key
	x *index
	r *run
	i int
}

// load sets c.k to the first live entry at or after c's place, and
// reports whether there is one. The stale entries it passes at the run's
// head are trimmed.
func (c *mcursor) load() bool {
	x, r := c.x, c.r
	for ; c.i < len(r.e); c.i++ {
		e := r.e[c.i]
		if x.valid(e) {
			if rec := x.recs.at(e.ref); rec.due == e.at {
				c.k = key{at: e.at, id: rec.id, ref: e.ref, priority: rec.priority}
				return true
			}
		}
		if c.i == r.head {
			r.head++
		}
	}
	return false
}

// less reports whether the entry of the cursor at place a of the heap comes
// before that of the cursor at place b.
func (m *merge) less(a, b int) bool {
	return m.cs[m.h[a]].k.compare(&m.cs[m.h[b]].k) < 0
}

// add adds the entries of x from the first not less than from. x's tail
// must have been sorted into a run (flush).
func (m *merge) add(x *index, from *key) {
	for j := range x.runs {
		r := &x.runs[j]
		c := mcursor{x: x, r: r, i: x.seek(r, from)}
		ok := c.load()
		for ok && c.k.compare(from) < 0 {
			c.i++
			ok = c.load()
		}
		if !ok {
			continue
		}
		m.cs = append(m.cs, c)
		m.h = append(m.h, uint16(len(m.cs)-1))
		m.up(len(m.h) - 1)
	}
}

// seek returns the place in r of its first live entry not less than from,
// or of a stale entry before it. Live entries due at the same instant are
// in the order of their keys, but stale ones among them may not be (their
// records may have changed or gone), so a step of the search among the
// entries due at from's instant looks at the first live entry from the
// step's place: the steps see the live entries alone, in order. A Due that
// pages through ten thousand triggers due at one instant then takes a
// logarithmic number of steps a page, not one for each trigger before its
// cursor.
func (x *index) seek(r *run, from *key) int {
	lo := r.head + sort.Search(r.size(), func(k int) bool { return r.e[r.head+k].at >= from.at })
	hi := lo + sort.Search(len(r.e)-lo, func(k int) bool { return r.e[lo+k].at > from.at })
	return lo + sort.Search(hi-lo, func(k int) bool {
		for _, e := range r.e[lo+k : hi] {
			if x.valid(e) {
				rec := x.recs.at(e.ref)
				return from.compare(&key{at: e.at, id: rec.id, priority: rec.priority}) <= 0
			}
		}
		return true
	})
}

// up moves the cursor at place j of the heap up to its place.
func (m *merge) up(j int) {
	for j > 0 {
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
