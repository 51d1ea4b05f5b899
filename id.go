package trigger

import (
	"encoding/binary"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"
)

// newID returns a version 7 UUID (RFC 9562): 48 bits of Unix milliseconds
// then 74 random bits. Time-ordered ids keep the stores' id indexes local.
//
// The random bits come from math/rand/v2's global source, which is ChaCha8
// seeded from the operating system: unpredictable and fast. uuid.NewV7 reads
// crypto/rand on every call, which costs a system call on many kernels and
// would be most of the cost of scheduling a trigger.
func newID(now time.Time) string {
	var u uuid.UUID
	ms := uint64(now.UnixMilli())
	binary.BigEndian.PutUint64(u[8:], rand.Uint64())
	binary.BigEndian.PutUint64(u[0:], ms<<16|rand.Uint64()&0xfff)
	u[6] = u[6]&0x0f | 0x70 // version 7
	u[8] = u[8]&0x3f | 0x80 // variant RFC 9562
	return u.String()
}
