package trigger

import (
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestNewIDIsUUIDv7(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		s := newID(now)
		u, err := uuid.Parse(s)
		if err != nil {
			t.Fatalf("newID() = %q: %v", s, err)
		}
		if u.Version() != 7 || u.Variant() != uuid.RFC4122 {
			t.Fatalf("newID() = %q: version %d variant %v, want 7 RFC4122", s, u.Version(), u.Variant())
		}
		if sec, nsec := u.Time().UnixTime(); time.Unix(sec, nsec).UnixMilli() != now.UnixMilli() {
			t.Fatalf("newID() = %q carries time %v, want %v", s, time.Unix(sec, nsec), now)
		}
		if seen[s] {
			t.Fatalf("newID() repeated %q", s)
		}
		seen[s] = true
	}
}
