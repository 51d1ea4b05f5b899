package memstore

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"
)

// TestIDMapClashes checks idMap against a plain map with a hash so poor that
// IDs clash all the time.
func TestIDMapClashes(t *testing.T) {
	m := newIDMap()
	m.hash = func(id string) uint64 { return uint64(len(id) % 3) }
	model := map[string]*record{}
	rng := rand.New(rand.NewPCG(3, 4))
	for step := range 5000 {
		id := fmt.Sprintf("%0*d", 1+rng.IntN(6), rng.IntN(50))
		switch r := model[id]; {
		case r == nil:
			r = &record{id: id}
			if !m.add(r) {
				t.Fatalf("step %d: add(%q) of a new ID reported false", step, id)
			}
			model[id] = r
		case rng.IntN(2) == 0:
			m.remove(r)
			delete(model, id)
		default:
			if m.add(&record{id: id}) {
				t.Fatalf("step %d: add(%q) of a stored ID reported true", step, id)
			}
		}
		for id, r := range model {
			if got := m.get(id); got != r {
				t.Fatalf("step %d: get(%q) = %p, want %p", step, id, got, r)
			}
		}
		if got := m.get("absent"); got != nil {
			t.Fatalf("step %d: get of an absent ID = %p", step, got)
		}
		all := map[string]*record{}
		for r := range m.all() {
			all[r.id] = r
		}
		if !maps.Equal(all, model) {
			t.Fatalf("step %d: all() returns %d records, want %d", step, len(all), len(model))
		}
	}
}
