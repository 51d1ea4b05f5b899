package memstore

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestIDMapClashes checks idMap against a plain map with a hash so poor that
// IDs clash all the time.
func TestIDMapClashes(t *testing.T) {
	var recs slab
	m := newIDMap(&recs, newHash())
	m.hash = func(id string) uint64 { return uint64(len(id) % 3) }
	model := map[string]uint32{}
	rng := rand.New(rand.NewPCG(3, 4))
	for step := range 5000 {
		id := fmt.Sprintf("%0*d", 1+rng.IntN(6), rng.IntN(50))
		switch i, stored := model[id]; {
		case !stored:
			i = recs.alloc()
			if !m.add(id, i) {
				t.Fatalf("step %d: add(%q) of a new ID reported false", step, id)
			}
			recs.at(i).id = id
			model[id] = i
		case rng.IntN(2) == 0:
			m.remove(id, i)
			recs.release(i)
			delete(model, id)
		default:
			j := recs.alloc()
			if m.add(id, j) {
				t.Fatalf("step %d: add(%q) of a stored ID reported true", step, id)
			}
			recs.release(j)
		}
		for id, i := range model {
			if got, r, ok := m.get(id); !ok || got != i || r != recs.at(i) {
				t.Fatalf("step %d: get(%q) = %d, want %d", step, id, got, i)
			}
		}
		if got, _, ok := m.get("absent"); ok || got != noRef {
			t.Fatalf("step %d: get of an absent ID = %d", step, got)
		}
		if n := len(m.byHash) + len(m.clash); n != len(model) {
			t.Fatalf("step %d: the maps hold %d IDs, want %d", step, n, len(model))
		}
	}
}

// get, add and remove are find, put and drop of an ID the map hashes.
func (m *idMap) get(id string) (uint32, record, bool) { return m.find(id, m.hash(id)) }
func (m *idMap) add(id string, i uint32) bool         { return m.put(id, m.hash(id), i) }
func (m *idMap) remove(id string, i uint32)           { m.drop(id, m.hash(id), i) }
