package memstore

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestIDMap checks idMap against a plain map through random adds and
// removes, with hashes that make IDs share tags and homes all the time
// (a poor hash, one whose tags are all alike, and one that puts every ID at
// the table's last slot, so that runs wrap around), and with a good one.
func TestIDMap(t *testing.T) {
	good := newHash()
	for name, hash := range map[string]func(string) uint64{
		"good": good,
		"poor": func(id string) uint64 { return good(id) % 3 << (32 - shardBits) },
		"same": func(string) uint64 { return 7 << (32 - shardBits) },
		"last": func(id string) uint64 { return (0xffffffff - good(id)%5) << (32 - shardBits) },
	} {
		t.Run(name, func(t *testing.T) {
			var recs slab
			m := newIDMap(&recs)
			model := map[string]uint32{}
			rng := rand.New(rand.NewPCG(3, 4))
			for step := range 4000 {
				id := fmt.Sprintf("%0*d", 1+rng.IntN(6), rng.IntN(300))
				switch i, stored := model[id]; {
				case !stored:
					i = recs.alloc()
					if !m.put(id, hash(id), i) {
						t.Fatalf("step %d: put(%q) of a new ID reported false", step, id)
					}
					recs.at(i).id = id
					model[id] = i
				case rng.IntN(3) == 0:
					m.drop(id, hash(id), i)
					recs.release(i)
					delete(model, id)
				default:
					j := recs.alloc()
					if m.put(id, hash(id), j) {
						t.Fatalf("step %d: put(%q) of a stored ID reported true", step, id)
					}
					recs.release(j)
				}
				if step%50 != 0 {
					continue
				}
				for id, i := range model {
					if got, r, ok := m.find(id, hash(id)); !ok || got != i || r != recs.at(i) {
						t.Fatalf("step %d: find(%q) = %d, want %d", step, id, got, i)
					}
				}
				if got, _, ok := m.find("absent", hash("absent")); ok || got != noRef {
					t.Fatalf("step %d: find of an absent ID = %d", step, got)
				}
				full := 0
				for _, s := range m.slots {
					if s != 0 {
						full++
					}
				}
				if full != len(model) || int(m.n) != len(model) {
					t.Fatalf("step %d: %d full slots, n = %d, want %d", step, full, m.n, len(model))
				}
				if 4*full > 3*len(m.slots) {
					t.Fatalf("step %d: %d of %d slots full", step, full, len(m.slots))
				}
			}
		})
	}
}
