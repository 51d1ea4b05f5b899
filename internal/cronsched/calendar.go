package cronsched

import (
	"math/bits"
	"sync/atomic"
	"time"

	"github.com/robfig/cron/v3"
)

// Calendar is a cron expression read in a time zone; see the package
// documentation for its daylight-saving rules. It is safe for concurrent use.
type Calendar struct {
	f         fields
	loc       *time.Location
	everyHour bool // the hour field matches all 24 hours
	// last remembers the latest answer: Next(t) is last.next for every t in
	// [last.after, last.next). Triggers sharing a spec mostly ask about the
	// same occurrence (10,000 triggers "every minute" all finishing the
	// same one, or registered within the same minute), and then Next costs
	// one atomic load.
	last atomic.Pointer[answer]
}

type answer struct{ after, next time.Time }

const allHours = 1<<24 - 1

func newCalendar(s *cron.SpecSchedule, loc *time.Location) *Calendar {
	return &Calendar{f: newFields(s), loc: loc, everyHour: s.Hour&allHours == allHours}
}

// Location returns the time zone the expression is read in.
func (c *Calendar) Location() *time.Location { return c.loc }

// Next returns the first activation strictly after t, in the calendar's
// location, or the zero time if there is none within searchYears of t.
func (c *Calendar) Next(t time.Time) time.Time {
	if a := c.last.Load(); a != nil && !t.Before(a.after) && t.Before(a.next) {
		return a.next
	}
	n := c.next(t)
	if !n.IsZero() {
		c.last.Store(&answer{after: t, next: n})
	}
	return n
}

// maxSegments bounds the zone periods (spans of constant UTC offset) one
// call walks through: real zones change offset at most a few times a year.
const maxSegments = 4 * searchYears

// next walks the zone's periods of constant offset from t. Within one, wall
// time and instants map one to one, so a search on the wall clock (carried
// in UTC, which has no transitions) finds the candidates; the rules of the
// package documentation decide at the transitions.
func (c *Calendar) next(t time.Time) time.Time {
	t = t.In(c.loc)
	pos, first := t, true
	for range maxSegments {
		start, end := pos.ZoneBounds()
		_, off := pos.Zone()
		// The search starts after t, or at the segment's first second.
		from := wall(t, off)
		if !first {
			from = wall(start, off).Add(-time.Nanosecond)
		}
		first = false
		cand := c.f.next(from)
		if cand.IsZero() {
			return time.Time{}
		}
		if !c.everyHour && !start.IsZero() {
			// Clocks went back at start: the wall times of the first
			// (prevOff - off) of this segment happened before. Skip them.
			if _, prevOff := start.Add(-time.Nanosecond).Zone(); prevOff > off {
				if repeatEnd := wall(start, prevOff); cand.Before(repeatEnd) {
					if cand = c.f.next(repeatEnd.Add(-time.Nanosecond)); cand.IsZero() {
						return time.Time{}
					}
				}
			}
		}
		at := instant(cand, off, c.loc)
		if end.IsZero() || at.Before(end) {
			return at
		}
		// The candidate lies past this segment. If clocks jump forward at
		// end, wall times in [wall(end, off), wall(end, nextOff)) never
		// happen: one of them matching fires at the jump.
		if _, nextOff := end.Zone(); nextOff > off && cand.Before(wall(end, nextOff)) {
			return end.In(c.loc)
		}
		pos = end.In(c.loc)
	}
	return time.Time{}
}

// wall returns the wall-clock reading of t at UTC offset off, carried as a
// UTC time.
func wall(t time.Time, off int) time.Time {
	return time.Unix(t.Unix()+int64(off), int64(t.Nanosecond())).UTC()
}

// instant returns the instant whose wall-clock reading at offset off is w.
func instant(w time.Time, off int, loc *time.Location) time.Time {
	return time.Unix(w.Unix()-int64(off), int64(w.Nanosecond())).In(loc)
}

// fields is a parsed cron expression as bit sets, searched with bit
// operations. robfig/cron's own SpecSchedule.Next steps hour by hour and day
// by day through time.Time values, which takes microseconds for a daily
// schedule; this takes tens of nanoseconds.
type fields struct {
	second, minute uint64 // bits 0..59
	hour           uint64 // bits 0..23
	month          uint64 // bits 1..12
	dom            uint64 // bits 1..31
	// dowDays[w] has bit d set when day d of a month whose first day is
	// weekday w matches the day-of-week field.
	dowDays [7]uint64
	// both: a day must match both day fields (one of them is '*'), as in
	// robfig/cron; otherwise either one.
	both bool
}

// starBit is robfig/cron's mark of a field written as '*' or '?'.
const starBit = 1 << 63

func newFields(s *cron.SpecSchedule) fields {
	f := fields{
		second: s.Second & (1<<60 - 1),
		minute: s.Minute & (1<<60 - 1),
		hour:   s.Hour & allHours,
		month:  s.Month & (1<<13 - 2),
		dom:    s.Dom & (1<<32 - 2),
		both:   s.Dom&starBit != 0 || s.Dow&starBit != 0,
	}
	for w := range 7 {
		for d := 1; d <= 31; d++ {
			if s.Dow&(1<<((w+d-1)%7)) != 0 {
				f.dowDays[w] |= 1 << d
			}
		}
	}
	return f
}

// searchYears bounds the search: a spec that matches no day within it (such
// as February 30) has no next activation.
const searchYears = 30

// nextBit returns the lowest set bit of mask at or above from, or -1.
func nextBit(mask uint64, from int) int {
	if from < 0 {
		from = 0
	}
	m := mask &^ (1<<uint(from) - 1)
	if from >= 64 || m == 0 {
		return -1
	}
	return bits.TrailingZeros64(m)
}

// next returns the first wall time strictly after w (a UTC carrier), at a
// whole second, that matches the fields, or the zero time.
func (f *fields) next(w time.Time) time.Time {
	w = w.Truncate(time.Second).Add(time.Second)
	y, mo, d := w.Date()
	h, mi, s := w.Clock()
	month := int(mo)
	for limit := y + searchYears; y <= limit; {
		m := nextBit(f.month, month)
		if m < 0 {
			y, month, d, h, mi, s = y+1, 1, 1, 0, 0, 0
			continue
		}
		if m != month {
			month, d, h, mi, s = m, 1, 0, 0, 0
		}
		dd := nextBit(f.days(y, month), d)
		if dd < 0 {
			month, d, h, mi, s = month+1, 1, 0, 0, 0
			if month > 12 {
				y, month = y+1, 1
			}
			continue
		}
		if dd != d {
			d, h, mi, s = dd, 0, 0, 0
		}
		hh := nextBit(f.hour, h)
		if hh < 0 {
			d, h, mi, s = d+1, 0, 0, 0
			continue
		}
		if hh != h {
			h, mi, s = hh, 0, 0
		}
		mm := nextBit(f.minute, mi)
		if mm < 0 {
			h, mi, s = h+1, 0, 0
			continue
		}
		if mm != mi {
			mi, s = mm, 0
		}
		ss := nextBit(f.second, s)
		if ss < 0 {
			mi, s = mi+1, 0
			continue
		}
		return time.Date(y, time.Month(month), d, h, mi, ss, 0, time.UTC)
	}
	return time.Time{}
}

// days returns the days of the month that match, as bits 1..31.
func (f *fields) days(year, month int) uint64 {
	valid := uint64(1)<<(daysIn(year, month)+1) - 2
	dow := f.dowDays[weekday(year, month, 1)]
	if f.both {
		return f.dom & dow & valid
	}
	return (f.dom | dow) & valid
}

func daysIn(year, month int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// weekday returns the day of the week of a date, 0 for Sunday (Sakamoto's
// method).
func weekday(y, m, d int) int {
	t := [...]int{0, 3, 2, 5, 0, 3, 5, 1, 4, 6, 2, 4}
	if m < 3 {
		y--
	}
	return ((y+y/4-y/100+y/400+t[m-1]+d)%7 + 7) % 7
}
