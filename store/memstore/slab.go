package memstore

import "iter"

// slab holds the records in chunks that never move once allocated, so that
// a record is named by its index in the slab, a ref, and a *record stays
// valid while the record is stored. The long-lived structures (the ID map,
// the due index, the lists of states, the leases, the children of parents)
// hold refs, which hold no pointers: the garbage collector scans the chunks,
// where only a record's ID, payload and extra are pointers, instead of
// finding a million small objects through the pointers to them on every
// cycle.
//
// The slot of a deleted record is cleared, which drops its strings, and goes
// on a free list for the next record stored. The slab never shrinks: like a
// Go map, it keeps the size of its peak.
type slab struct {
	chunks []*[chunkLen]record
	// used is how many slots have held a record; those past it are fresh.
	used uint32
	// free is 1 + the first free slot below used, or 0 if there is none. A
	// free record is zero but for its slot field, which holds 1 + the next
	// free slot, or 0.
	free uint32
}

// chunkLen records make a chunk of 96 KiB, 12 pages.
const (
	chunkBits = 10
	chunkLen  = 1 << chunkBits
)

// noRef is the ref of no record: a slab holds fewer than 2^32-1.
const noRef = 1<<32 - 1

// at returns record i, which must have been allocated.
func (s *slab) at(i uint32) *record {
	return &s.chunks[i>>chunkBits][i&(chunkLen-1)]
}

// alloc returns a zero record's slot, reusing the slot freed last.
func (s *slab) alloc() uint32 {
	if s.free != 0 {
		i := s.free - 1
		r := s.at(i)
		s.free, r.slot = r.slot, 0
		return i
	}
	i := s.used
	if i == noRef {
		panic("memstore: a store holds at most 2^32-2 triggers")
	}
	if i%chunkLen == 0 {
		s.chunks = append(s.chunks, new([chunkLen]record))
	}
	s.used++
	return i
}

// release frees slot i. Its *record must not be used after.
func (s *slab) release(i uint32) {
	*s.at(i) = record{slot: s.free}
	s.free = i + 1
}

// all returns the records stored, and their refs, in slot order.
func (s *slab) all() iter.Seq2[uint32, *record] {
	return func(yield func(uint32, *record) bool) {
		for i := range s.used {
			if r := s.at(i); r.id != "" && !yield(i, r) {
				return
			}
		}
	}
}
