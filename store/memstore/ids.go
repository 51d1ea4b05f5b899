package memstore

import (
	"hash/maphash"
	"iter"
	"maps"
)

// idMap finds records by trigger ID. A Go map keyed by the ID re-reads
// every ID string, wherever it lies in memory, each time it grows: at a
// million triggers that doubled the cost of a Save. idMap keys a Go map by a
// 64-bit hash of the ID instead, which also makes an entry 8 bytes smaller.
// An ID whose hash is already taken by another ID (with a random seed, the
// odds are about 1 in 37 million for a store of a million triggers) goes to
// a second, ordinary map.
type idMap struct {
	hash   func(string) uint64
	byHash map[uint64]*record
	clash  map[string]*record
}

func newIDMap() idMap {
	seed := maphash.MakeSeed()
	return idMap{
		hash:   func(id string) uint64 { return maphash.String(seed, id) },
		byHash: make(map[uint64]*record),
		clash:  make(map[string]*record),
	}
}

// get returns the record with the given id, or nil.
func (m *idMap) get(id string) *record {
	if r := m.byHash[m.hash(id)]; r != nil && r.id == id {
		return r
	}
	return m.clash[id]
}

// add adds r unless its ID is in m already, and reports whether it did. It
// hashes the ID once and looks it up once, so a Save pays for one lookup and
// one insert.
func (m *idMap) add(r *record) bool {
	h := m.hash(r.id)
	c, taken := m.byHash[h]
	switch {
	case !taken:
		m.byHash[h] = r
	case c.id == r.id || m.clash[r.id] != nil:
		return false
	default:
		m.clash[r.id] = r
	}
	return true
}

// remove removes r, which must be in m.
func (m *idMap) remove(r *record) {
	h := m.hash(r.id)
	if m.byHash[h] != r {
		delete(m.clash, r.id)
		return
	}
	delete(m.byHash, h)
	for id, c := range m.clash {
		if m.hash(id) == h {
			delete(m.clash, id)
			m.byHash[h] = c
			return
		}
	}
}

// all returns every record.
func (m *idMap) all() iter.Seq[*record] {
	return func(yield func(*record) bool) {
		for _, r := range m.byHash {
			if !yield(r) {
				return
			}
		}
		for r := range maps.Values(m.clash) {
			if !yield(r) {
				return
			}
		}
	}
}
