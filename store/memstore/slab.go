package memstore

import "iter"

// slab holds the records in chunks that never move once allocated, so that
// a record is named by its index in the slab, a ref, and a record's view
// stays valid while the record is stored. The long-lived structures (the ID
// map, the due index, the lists of states, the leases, the children of
// parents) hold refs, which hold no pointers: the garbage collector scans
// the chunks' arrays of pointer fields instead of finding a million small
// objects through the pointers to them on every cycle.
//
// The slot of a deleted record is cleared, which drops its strings, and goes
// on a free list for the next record stored. The slab never shrinks: like a
// Go map, it keeps the size of its peak.
type slab struct {
	// small holds the first chunkLen records, in chunks of smallLen, and
	// chunks the others.
	small  [chunkLen / smallLen]*smallChunk
	chunks []*chunk
	// used is how many slots have held a record; those past it are fresh.
	used uint32
	// free is 1 + the first free slot below used, or 0 if there is none. A
	// free record is zero but for its slot field, which holds 1 + the next
	// free slot, or 0.
	free uint32
	// payloads holds the payloads that are not empty, and freePayloads the
	// places of deleted ones, for reuse. Most payloads are empty: kept in
	// the record, a payload's string was one more pointer for the
	// collector to look at in every record, and scanning those cost more
	// than marking all the IDs.
	payloads     []string
	freePayloads []uint32
}

// chunk holds chunkLen records, in two arrays: the collector scans an
// object only up to its last pointer, so it never looks at vals.
type chunk struct {
	ptrs [chunkLen]recPtrs
	vals [chunkLen]recVals
}

// chunkLen records make a chunk of 88 KiB.
const (
	chunkBits = 10
	chunkLen  = 1 << chunkBits
)

// smallChunk is a chunk for the first records of a slab, small so that a
// small store stays small: a store has a slab in each of its shards, and
// with chunks of 1024 records a store of a few dozen triggers took 1.4 MB,
// and one of ten thousand 1.5 MB of slabs where 0.9 MB are records (a
// shard held 625 of them in room for 1088). smallLen records make 5.5 KiB
// (in a 6 KiB allocation); a chunk of 1024 is the smallest whose 88 KiB
// are a whole number of the heap's 8 KiB pages.
type smallChunk struct {
	ptrs [smallLen]recPtrs
	vals [smallLen]recVals
}

const (
	smallBits = 6
	smallLen  = 1 << smallBits
)

// noRef is the ref of no record: a slab holds at most noRef records, with
// refs 0 to noRef-1.
const noRef = 1<<32 - 1

// at returns record i, which must have been allocated.
func (s *slab) at(i uint32) record {
	if i < chunkLen {
		c, j := s.small[i>>smallBits], i&(smallLen-1)
		return record{&c.ptrs[j], &c.vals[j]}
	}
	i -= chunkLen
	c, j := s.chunks[i>>chunkBits], i&(chunkLen-1)
	return record{&c.ptrs[j], &c.vals[j]}
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
		panic("memstore: a store holds at most 2^32-1 triggers")
	}
	switch {
	case i < chunkLen && i%smallLen == 0:
		s.small[i>>smallBits] = new(smallChunk)
	case i >= chunkLen && i%chunkLen == 0:
		s.chunks = append(s.chunks, new(chunk))
	}
	s.used++
	return i
}

// release frees slot i, and its payload. Its record must not be used
// after.
func (s *slab) release(i uint32) {
	r := s.at(i)
	s.setPayload(r, "")
	*r.recPtrs, *r.recVals = recPtrs{}, recVals{slot: s.free}
	s.free = i + 1
}

// payload returns the payload of r, as JSON.
func (s *slab) payload(r record) string {
	if r.payload == 0 {
		return ""
	}
	return s.payloads[r.payload-1]
}

// setPayload sets the payload of r to p, JSON or "" for an empty payload.
func (s *slab) setPayload(r record, p string) {
	switch {
	case r.payload != 0 && p != "":
		s.payloads[r.payload-1] = p
	case r.payload != 0:
		s.payloads[r.payload-1] = ""
		s.freePayloads = append(s.freePayloads, r.payload-1)
		r.payload = 0
	case p == "":
	case len(s.freePayloads) > 0:
		last := len(s.freePayloads) - 1
		r.payload = s.freePayloads[last] + 1
		s.freePayloads = s.freePayloads[:last]
		s.payloads[r.payload-1] = p
	default:
		s.payloads = append(s.payloads, p)
		r.payload = uint32(len(s.payloads))
	}
}

// all returns the records stored, and their refs, in slot order.
func (s *slab) all() iter.Seq2[uint32, record] {
	return func(yield func(uint32, record) bool) {
		for i := range s.used {
			if r := s.at(i); r.id != "" && !yield(i, r) {
				return
			}
		}
	}
}
