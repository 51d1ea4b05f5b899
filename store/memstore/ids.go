package memstore

import "hash/maphash"

// idMap finds records by trigger ID. A Go map keyed by the ID re-reads
// every ID string, wherever it lies in memory, each time it grows: at a
// million triggers that doubled the cost of a Save. idMap keys a Go map by a
// 64-bit hash of the ID instead, and maps it to the record's ref: an entry
// holds no pointer, so the garbage collector does not scan the map. An ID
// whose hash is already taken by another ID (with a random seed, the odds
// are about 1 in 37 million for a store of a million triggers) goes to a
// second, ordinary map.
type idMap struct {
	recs   *slab
	hash   func(string) uint64
	byHash map[uint64]uint32
	clash  map[string]uint32
}

// newHash returns a hash of trigger IDs with a random seed.
func newHash() func(string) uint64 {
	seed := maphash.MakeSeed()
	return func(id string) uint64 { return maphash.String(seed, id) }
}

// newIDMap returns an empty map of the records of recs, which hashes IDs
// with hash. The store passes every shard's map the hash that picks the
// shard, and hands its methods the hash it took of an ID rather than hash
// it again.
func newIDMap(recs *slab, hash func(string) uint64) idMap {
	return idMap{
		recs:   recs,
		hash:   hash,
		byHash: make(map[uint64]uint32),
		clash:  make(map[string]uint32),
	}
}

// find returns the ref and record of id, whose hash is h, and whether it
// is stored.
func (m *idMap) find(id string, h uint64) (uint32, record, bool) {
	if i, ok := m.byHash[h]; ok {
		if r := m.recs.at(i); r.id == id {
			return i, r, true
		}
	}
	if i, ok := m.clash[id]; ok {
		return i, m.recs.at(i), true
	}
	return noRef, record{}, false
}

// put maps id, whose hash is h, to ref i unless id is in m already, and
// reports whether it did. It looks the ID up once, so a Save pays for one
// lookup and one insert.
func (m *idMap) put(id string, h uint64, i uint32) bool {
	c, taken := m.byHash[h]
	switch {
	case !taken:
		m.byHash[h] = i
	case m.recs.at(c).id == id:
		return false
	default:
		if _, dup := m.clash[id]; dup {
			return false
		}
		m.clash[id] = i
	}
	return true
}

// drop removes id, whose hash is h and which must map to ref i.
func (m *idMap) drop(id string, h uint64, i uint32) {
	if c, ok := m.byHash[h]; !ok || c != i {
		delete(m.clash, id)
		return
	}
	delete(m.byHash, h)
	for other, c := range m.clash {
		if m.hash(other) == h {
			delete(m.clash, other)
			m.byHash[h] = c
			return
		}
	}
}
