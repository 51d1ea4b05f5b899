// Package slicepool keeps large slices for reuse between calls. A slice of
// a thousand triggers or records is hundreds of kilobytes: allocated afresh
// for every call, its pages are new to the process each time, and filling
// them cost more than the rest of a ScheduleBatch (session 10).
package slicepool

import (
	"slices"
	"sync"
)

// Pool keeps slices of up to a maximum capacity. A kept slice holds only
// zero values, so that it keeps nothing alive. The zero Pool keeps none;
// make one with New.
type Pool[T any] struct {
	max int
	p   sync.Pool
}

// New returns a pool that keeps slices of at most max elements.
func New[T any](max int) *Pool[T] { return &Pool[T]{max: max} }

// Get returns an empty slice with room for n elements, whose spare
// capacity is zero, through a pointer to hand back to Put.
func (p *Pool[T]) Get(n int) *[]T {
	b, _ := p.p.Get().(*[]T)
	if b == nil {
		b = new([]T)
	}
	*b = slices.Grow((*b)[:0], n)
	return b
}

// Put clears *b and keeps it for a later Get, unless its capacity is above
// the pool's maximum. *b must not be used after.
func (p *Pool[T]) Put(b *[]T) {
	if cap(*b) > p.max {
		return
	}
	clear(*b)
	*b = (*b)[:0]
	p.p.Put(b)
}
