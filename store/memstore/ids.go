package memstore

import "hash/maphash"

// idMap finds records by trigger ID. It is a hash table of its own rather
// than a Go map, for three reasons measured on a Save, whose cost at a
// million triggers is mostly waiting for memory:
//
//   - A Go map keyed by the ID re-reads every ID string, wherever it lies
//     in memory, each time it grows: that doubled the cost of a Save.
//   - A Go map keyed by a hash of the ID (which this replaced) spreads a
//     lookup over its control word and its slot, two cache lines, and
//     needs a second map for IDs whose hashes clash.
//   - An entry here is one word with no pointer, so the table is half the
//     size of that map's and the garbage collector never scans it.
//
// A slot holds a tag, 32 bits of the ID's hash below the bits that pick the
// shard, and 1 + the record's ref; 0 is an empty slot. The table has 2^b
// slots, and an ID's home slot is the top b bits of its tag, so that the
// table grows without reading a record: a slot's tag says where it goes.
// Collisions are resolved by linear probing: an ID is in the first run of
// full slots from its home, and a lookup compares the ID of a record only
// where the tag matches. Two IDs may share a tag; each has its own slot.
// Removal shifts the run back (no tombstones), so a lookup of an absent ID
// stops at the first empty slot.
//
// The table doubles past 3/4 full and never shrinks, like a Go map: at a
// million triggers in 16 shards it takes 10 to 21 bytes a trigger, where
// the map of hashes took 19 to 39.
type idMap struct {
	recs  *slab
	slots []uint64
	shift uint8  // 32 - b: a tag's home is tag >> shift
	n     uint32 // IDs held
}

// A new table has minSlots slots: 512 bytes.
const (
	minSlotBits = 6
	minSlots    = 1 << minSlotBits
)

// newHash returns a hash of trigger IDs with a random seed.
func newHash() func(string) uint64 {
	seed := maphash.MakeSeed()
	return func(id string) uint64 { return maphash.String(seed, id) }
}

// newIDMap returns an empty map of the records of recs. The store hands its
// methods the hash of an ID it took to pick the shard, rather than hash it
// again.
func newIDMap(recs *slab) idMap {
	return idMap{recs: recs, slots: make([]uint64, minSlots), shift: 32 - minSlotBits}
}

// tagOf returns the tag of an ID whose hash is h: the 32 bits below those
// that pick its shard.
func tagOf(h uint64) uint32 { return uint32(h >> (32 - shardBits)) }

// find returns the ref and record of id, whose hash is h, and whether it
// is stored.
func (m *idMap) find(id string, h uint64) (uint32, record, bool) {
	tag := tagOf(h)
	mask := uint32(len(m.slots) - 1)
	for j := tag >> m.shift; ; j = (j + 1) & mask {
		s := m.slots[j]
		if s == 0 {
			return noRef, record{}, false
		}
		if uint32(s>>32) == tag {
			i := uint32(s) - 1
			if r := m.recs.at(i); r.id == id {
				return i, r, true
			}
		}
	}
}

// put maps id, whose hash is h, to ref i unless id is in m already, and
// reports whether it did. It probes once: the empty slot that ends the
// search is where id goes.
func (m *idMap) put(id string, h uint64, i uint32) bool {
	if 4*(m.n+1) > 3*uint32(len(m.slots)) {
		m.grow()
	}
	tag := tagOf(h)
	mask := uint32(len(m.slots) - 1)
	for j := tag >> m.shift; ; j = (j + 1) & mask {
		s := m.slots[j]
		if s == 0 {
			m.slots[j] = uint64(tag)<<32 | uint64(i+1)
			m.n++
			return true
		}
		if uint32(s>>32) == tag && m.recs.at(uint32(s)-1).id == id {
			return false
		}
	}
}

// drop removes id, whose hash is h and which must map to ref i. The slots
// after it in its run move back where their homes allow, so that every ID
// stays reachable from its home without a gap.
func (m *idMap) drop(id string, h uint64, i uint32) {
	want := uint64(tagOf(h))<<32 | uint64(i+1)
	mask := uint32(len(m.slots) - 1)
	j := tagOf(h) >> m.shift
	for m.slots[j] != want {
		if m.slots[j] == 0 {
			panic("memstore: dropping an ID that is not in the map: " + id)
		}
		j = (j + 1) & mask
	}
	m.n--
	for k := (j + 1) & mask; ; k = (k + 1) & mask {
		s := m.slots[k]
		if s == 0 {
			break
		}
		// The slot at k may fill the hole at j unless its home lies in
		// the cyclic range (j, k]: then it would move before its home.
		if home := uint32(s>>32) >> m.shift; (k-home)&mask >= (k-j)&mask {
			m.slots[j] = s
			j = k
		}
	}
	m.slots[j] = 0
}

// grow doubles the table. A slot's new home comes from its tag; putting
// the slots back in any order leaves each at or after its home with no empty
// slot between.
func (m *idMap) grow() {
	old := m.slots
	m.slots = make([]uint64, 2*len(old))
	m.shift--
	mask := uint32(len(m.slots) - 1)
	for _, s := range old {
		if s == 0 {
			continue
		}
		j := uint32(s>>32) >> m.shift
		for m.slots[j] != 0 {
			j = (j + 1) & mask
		}
		m.slots[j] = s
	}
}
