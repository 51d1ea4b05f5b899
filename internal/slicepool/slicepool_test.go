package slicepool

import "testing"

// A slice handed back comes out empty, cleared and with the room asked
// for; one above the maximum is not kept.
func TestPool(t *testing.T) {
	p := New[*int](8)
	b := p.Get(4)
	if len(*b) != 0 || cap(*b) < 4 {
		t.Fatalf("Get(4) = len %d cap %d", len(*b), cap(*b))
	}
	*b = append(*b, new(int), new(int))
	p.Put(b)
	for range 10 { // sync.Pool may drop what it keeps: look a few times
		c := p.Get(2)
		if full := (*c)[:cap(*c)]; full[0] != nil || full[1] != nil {
			t.Fatal("a kept slice still holds its values")
		}
		p.Put(c)
	}
	big := p.Get(100)
	*big = append(*big, new(int))
	p.Put(big)
	if c := p.Get(1); cap(*c) >= 100 {
		t.Fatalf("a slice of capacity %d above the maximum of 8 was kept", cap(*c))
	}
}
