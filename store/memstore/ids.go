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

func newIDMap(recs *slab) idMap {
	seed := maphash.MakeSeed()
	return idMap{
		recs:   recs,
		hash:   func(id string) uint64 { return maphash.String(seed, id) },
		byHash: make(map[uint64]uint32),
		clash:  make(map[string]uint32),
	}
}

// get returns the ref and record of the given id, and whether it is
// stored.
func (m *idMap) get(id string) (uint32, record, bool) {
	if i, ok := m.byHash[m.hash(id)]; ok {
		if r := m.recs.at(i); r.id == id {
			return i, r, true
		}
	}
	if i, ok := m.clash[id]; ok {
		return i, m.recs.at(i), true
	}
	return noRef, record{}, false
}

// add maps id to ref i unless id is in m already, and reports whether it
// did. It hashes the ID once and looks it up once, so a Save pays for one
// lookup and one insert.
func (m *idMap) add(id string, i uint32) bool {
	h := m.hash(id)
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

// remove removes id, which must map to ref i.
func (m *idMap) remove(id string, i uint32) {
	h := m.hash(id)
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
