package trigger

import (
	"testing"
	"time"
)

// The share of slow claims starts at all of them and falls below half
// within a dozen fast claims; once it is zero, one slow claim among fast
// ones does not make claims slow, a dozen slow ones in a row do.
func TestTimeClaim(t *testing.T) {
	var s Scheduler
	s.slowClaims.Store(allSlow)
	slow := func() bool { return s.slowClaims.Load() > allSlow/2 }
	n := 0
	for ; slow(); n++ {
		s.timeClaim(time.Microsecond)
	}
	if n > 12 {
		t.Fatalf("%d fast claims to count as fast, want at most 12", n)
	}
	for range 200 {
		s.timeClaim(time.Microsecond)
	}
	if v := s.slowClaims.Load(); v != 0 {
		t.Fatalf("after 200 fast claims the share of slow ones is %d/1024, want 0", v)
	}
	s.timeClaim(time.Second)
	if slow() {
		t.Fatal("one slow claim among fast ones made claims slow")
	}
	for n = 1; !slow(); n++ {
		s.timeClaim(slowClaim)
	}
	if n > 12 {
		t.Fatalf("%d slow claims in a row to count as slow, want at most 12", n)
	}
}
