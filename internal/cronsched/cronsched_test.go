package cronsched

import (
	"fmt"

	"github.com/robfig/cron/v3"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // the tests need the zones whatever the machine has
)

func mustLoad(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// seq returns the first n activations of spec in zone after from (a wall
// time in zone, "2006-01-02 15:04:05 MST" with the zone's abbreviation
// telling the pass).
func seq(t *testing.T, spec, zone string, from time.Time, n int) []string {
	t.Helper()
	s, err := Parse(spec, mustLoad(t, zone))
	if err != nil {
		t.Fatalf("Parse(%q): %v", spec, err)
	}
	var out []string
	at := from
	for range n {
		next := s.Next(at)
		if next.IsZero() {
			out = append(out, "none")
			break
		}
		if !next.After(at) {
			t.Fatalf("%s: Next(%v) = %v, not after it", spec, at, next)
		}
		out = append(out, next.In(mustLoad(t, zone)).Format("01-02 15:04:05 MST"))
		at = next
	}
	return out
}

func at(t *testing.T, zone, s string) time.Time {
	t.Helper()
	v, err := time.ParseInLocation("2006-01-02 15:04:05", s, mustLoad(t, zone))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// The daylight-saving rules, on the 2026 transitions of New York (clocks
// jump from 02:00 EST to 03:00 EDT on March 8 and go back from 02:00 EDT to
// 01:00 EST on November 1) and of other zones.
func TestCalendarDST(t *testing.T) {
	t.Parallel()
	const ny = "America/New_York"
	for _, c := range []struct {
		name, spec, zone, from string
		want                   []string
	}{
		{"spring/daily in the gap fires at the jump", "30 2 * * *", ny, "2026-03-07 12:00:00",
			[]string{"03-08 03:00:00 EDT", "03-09 02:30:00 EDT"}},
		{"spring/daily at the gap's start", "0 2 * * *", ny, "2026-03-07 12:00:00",
			[]string{"03-08 03:00:00 EDT", "03-09 02:00:00 EDT"}},
		{"spring/daily after the gap", "0 3 * * *", ny, "2026-03-07 12:00:00",
			[]string{"03-08 03:00:00 EDT", "03-09 03:00:00 EDT"}},
		{"spring/hourly", "0 * * * *", ny, "2026-03-08 00:30:00",
			[]string{"03-08 01:00:00 EST", "03-08 03:00:00 EDT", "03-08 04:00:00 EDT"}},
		{"spring/every 20 minutes", "*/20 * * * *", ny, "2026-03-08 01:30:00",
			[]string{"03-08 01:40:00 EST", "03-08 03:00:00 EDT", "03-08 03:20:00 EDT"}},
		{"spring/seconds", "*/30 59 1 * * *", ny, "2026-03-08 01:59:00",
			[]string{"03-08 01:59:30 EST", "03-09 01:59:00 EDT"}},
		{"fall/daily in the repeated hour fires once", "30 1 * * *", ny, "2026-10-31 12:00:00",
			[]string{"11-01 01:30:00 EDT", "11-02 01:30:00 EST"}},
		{"fall/every 30 minutes of hour 1 fires in the first pass only", "*/30 1 * * *", ny, "2026-10-31 12:00:00",
			[]string{"11-01 01:00:00 EDT", "11-01 01:30:00 EDT", "11-02 01:00:00 EST"}},
		{"fall/daily at 2 (after the repeat)", "0 2 * * *", ny, "2026-10-31 12:00:00",
			[]string{"11-01 02:00:00 EST", "11-02 02:00:00 EST"}},
		{"fall/hourly fires in both passes", "0 * * * *", ny, "2026-10-31 23:30:00",
			[]string{"11-01 00:00:00 EDT", "11-01 01:00:00 EDT", "11-01 01:00:00 EST", "11-01 02:00:00 EST"}},
		{"fall/@hourly too", "@hourly", ny, "2026-11-01 00:30:00",
			[]string{"11-01 01:00:00 EDT", "11-01 01:00:00 EST", "11-01 02:00:00 EST"}},
		{"fall/every 45 minutes, every hour", "*/45 * * * *", ny, "2026-11-01 00:50:00",
			[]string{"11-01 01:00:00 EDT", "11-01 01:45:00 EDT", "11-01 01:00:00 EST", "11-01 01:45:00 EST", "11-01 02:00:00 EST"}},
		{"fall/@daily", "@daily", ny, "2026-10-31 12:00:00",
			[]string{"11-01 00:00:00 EDT", "11-02 00:00:00 EST"}},
		{"london/spring", "30 1 * * *", "Europe/London", "2026-03-28 12:00:00",
			[]string{"03-29 02:00:00 BST", "03-30 01:30:00 BST"}},
		{"london/fall", "30 1 * * *", "Europe/London", "2026-10-24 12:00:00",
			[]string{"10-25 01:30:00 BST", "10-26 01:30:00 GMT"}},
		{"sydney/spring in October", "30 2 * * *", "Australia/Sydney", "2026-10-03 12:00:00",
			[]string{"10-04 03:00:00 AEDT", "10-05 02:30:00 AEDT"}},
		{"sydney/fall in April", "30 2 * * *", "Australia/Sydney", "2026-04-04 12:00:00",
			[]string{"04-05 02:30:00 AEDT", "04-06 02:30:00 AEST"}},
		{"lord howe/half-hour shift", "15 2 * * *", "Australia/Lord_Howe", "2026-10-03 12:00:00",
			[]string{"10-04 02:30:00 +11", "10-05 02:15:00 +11"}},
		{"lord howe/half-hour repeat", "*/20 1 * * *", "Australia/Lord_Howe", "2026-04-05 01:00:00",
			[]string{"04-05 01:20:00 +11", "04-05 01:40:00 +11", "04-06 01:00:00 +1030"}},
		{"utc", "0 0 1 * *", "UTC", "2026-01-15 00:00:00",
			[]string{"02-01 00:00:00 UTC", "03-01 00:00:00 UTC"}},
		{"never", "0 0 30 2 *", "UTC", "2026-01-15 00:00:00", []string{"none"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got := seq(t, c.spec, c.zone, at(t, c.zone, c.from), len(c.want))
			if strings.Join(got, ", ") != strings.Join(c.want, ", ") {
				t.Errorf("%q in %s from %s:\n got  %v\n want %v", c.spec, c.zone, c.from, got, c.want)
			}
		})
	}
}

// Next from inside the repeated hour (the second pass).
func TestCalendarFromTheSecondPass(t *testing.T) {
	t.Parallel()
	ny := mustLoad(t, "America/New_York")
	secondPass := time.Date(2026, 11, 1, 6, 15, 0, 0, time.UTC) // 01:15 EST
	if got := secondPass.In(ny).Format("15:04 MST"); got != "01:15 EST" {
		t.Fatalf("setup: %s", got)
	}
	for spec, want := range map[string]string{
		"30 1 * * *":   "11-02 01:30:00 EST", // 01:30 happened in the first pass
		"0 * * * *":    "11-01 02:00:00 EST",
		"*/30 * * * *": "11-01 01:30:00 EST",
	} {
		s, _ := Parse(spec, ny)
		if got := s.Next(secondPass).In(ny).Format("01-02 15:04:05 MST"); got != want {
			t.Errorf("%q: Next(01:15 EST) = %s, want %s", spec, got, want)
		}
	}
}

// oracle is Next by brute force, second by second, from the rules of the
// package documentation.
// It reads robfig/cron's bit sets directly to tell whether a wall time
// matches.
func oracle(spec string, c *Calendar, t time.Time, limit time.Duration) time.Time {
	rs := robfigUTC(spec).(*cron.SpecSchedule)
	matches := func(w time.Time) bool {
		bit := func(set uint64, v int) bool { return set&(1<<uint(v)) != 0 }
		dom, dow := bit(rs.Dom, w.Day()), bit(rs.Dow, int(w.Weekday()))
		day := dom || dow
		if rs.Dom&starBit != 0 || rs.Dow&starBit != 0 {
			day = dom && dow
		}
		return day && bit(rs.Second, w.Second()) && bit(rs.Minute, w.Minute()) && bit(rs.Hour, w.Hour()) && bit(rs.Month, int(w.Month()))
	}
	wallOf := func(x time.Time) time.Time {
		_, off := x.In(c.loc).Zone()
		return wall(x, off)
	}
	x := t.Truncate(time.Second).Add(time.Second)
	for end := t.Add(limit); x.Before(end); x = x.Add(time.Second) {
		w := wallOf(x)
		if matches(w) {
			repeat := false
			for k := 1; k <= 12 && !c.everyHour; k++ {
				if wallOf(x.Add(-time.Duration(k) * 15 * time.Minute)).Equal(w) {
					repeat = true
				}
			}
			if !repeat {
				return x.In(c.loc)
			}
		}
		// A jump: wall times between the last second's and this one's.
		if prev := wallOf(x.Add(-time.Second)); w.Sub(prev) > time.Second {
			for g := prev.Add(time.Second); g.Before(w); g = g.Add(time.Second) {
				if matches(g) {
					return x.In(c.loc)
				}
			}
		}
	}
	return time.Time{}
}

// Random specs and start times around the transitions of several zones
// agree with the brute-force oracle.
func TestCalendarAgainstOracle(t *testing.T) {
	t.Parallel()
	zones := []string{"America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "America/Sao_Paulo", "Asia/Tokyo"}
	transitions := map[string][]string{
		"America/New_York":    {"2026-03-08 00:00:00", "2026-11-01 00:00:00"},
		"Europe/Berlin":       {"2026-03-29 00:00:00", "2026-10-25 00:00:00"},
		"Australia/Lord_Howe": {"2026-04-05 00:00:00", "2026-10-04 00:00:00"},
		"America/Sao_Paulo":   {"2018-11-04 00:00:00", "2019-02-16 22:00:00"}, // DST began at midnight
		"Asia/Tokyo":          {"2026-06-01 00:00:00"},
	}
	specs := []string{"0 * * * *", "*/7 * * * *", "30 1 * * *", "0 2 * * *", "15,45 0-3 * * *", "0 0 * * *", "*/20 2 * * *", "10 */2 * * *", "0 30 1 * * *", "@hourly", "59 23 * * *"}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, zone := range zones {
		loc := mustLoad(t, zone)
		for _, spec := range specs {
			s, err := Parse(spec, loc)
			if err != nil {
				t.Fatal(err)
			}
			c := s.(*Calendar)
			for _, tr := range transitions[zone] {
				base := at(t, zone, tr)
				for range 4 {
					from := base.Add(time.Duration(rng.Int64N(int64(5 * time.Hour)))).Add(time.Duration(rng.IntN(3)) * time.Hour / 2)
					want := oracle(spec, c, from, 30*time.Hour)
					if want.IsZero() {
						continue
					}
					fresh, _ := Parse(spec, loc) // no memo
					if got := fresh.Next(from); !got.Equal(want) {
						t.Errorf("%s %q: Next(%v) = %v, oracle says %v", zone, spec, from.In(loc), got.In(loc), want)
					}
				}
			}
		}
	}
}

func robfigUTC(spec string) cron.Schedule {
	s, err := parser.Parse(spec)
	if err != nil {
		panic(err)
	}
	s.(*cron.SpecSchedule).Location = time.UTC
	return s
}

// The bit-set search finds what robfig/cron's own search finds, on the UTC
// clock, for random expressions and times.
func TestFieldsAgainstRobfig(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 4))
	field := func(lo, hi int) string {
		switch rng.IntN(6) {
		case 0:
			return "*"
		case 1:
			return fmt.Sprint(lo + rng.IntN(hi-lo+1))
		case 2:
			a := lo + rng.IntN(hi-lo+1)
			return fmt.Sprintf("%d-%d", a, a+rng.IntN(hi-a+1))
		case 3:
			return fmt.Sprintf("*/%d", 1+rng.IntN(hi-lo+1))
		case 4:
			return fmt.Sprintf("%d,%d", lo+rng.IntN(hi-lo+1), lo+rng.IntN(hi-lo+1))
		}
		return fmt.Sprintf("%d/%d", lo+rng.IntN(hi-lo+1), 1+rng.IntN(5))
	}
	for range 3000 {
		spec := strings.Join([]string{field(0, 59), field(0, 59), field(0, 23), field(1, 31), field(1, 12), field(0, 6)}, " ")
		s, err := Parse(spec, time.UTC)
		if err != nil {
			continue
		}
		c := s.(*Calendar)
		from := time.Date(2024+rng.IntN(4), time.Month(1+rng.IntN(12)), 1+rng.IntN(28), rng.IntN(24), rng.IntN(60), rng.IntN(60), rng.IntN(2)*int(time.Millisecond), time.UTC)
		want := robfigUTC(spec).Next(from)
		if want.IsZero() {
			continue // robfig gives up after five years
		}
		if got := c.f.next(from); !got.Equal(want) {
			t.Fatalf("%q: next(%v) = %v, robfig/cron says %v", spec, from, got, want)
		}
	}
}

// The memo answers Next for any time before the remembered occurrence.
func TestCalendarMemo(t *testing.T) {
	t.Parallel()
	s, _ := Parse("0 * * * * *", time.UTC)
	base := time.Date(2026, 5, 1, 10, 0, 30, 0, time.UTC)
	want := time.Date(2026, 5, 1, 10, 1, 0, 0, time.UTC)
	for _, d := range []time.Duration{0, time.Second, 29*time.Second + 999*time.Millisecond, 10 * time.Second, -30 * time.Second} {
		if got := s.Next(base.Add(d)); !got.Equal(want) {
			t.Errorf("Next(%v) = %v, want %v", base.Add(d), got, want)
		}
	}
	if got := s.Next(want); !got.Equal(want.Add(time.Minute)) {
		t.Errorf("Next(the occurrence) = %v, want the one after", got)
	}
	if got := s.Next(base.Add(-time.Minute)); !got.Equal(want.Add(-time.Minute)) {
		t.Errorf("Next(a minute earlier) = %v, want %v", got, want.Add(-time.Minute))
	}
}

func TestParse(t *testing.T) {
	t.Parallel()
	ok := []string{"* * * * *", "0 3 * * *", "*/10 * * * * *", "0 0 1 jan mon", "@daily", "@every 90s", "@every 1500ms", " 0 3 * * * "}
	for _, spec := range ok {
		if _, err := Parse(spec, time.UTC); err != nil {
			t.Errorf("Parse(%q): %v", spec, err)
		}
	}
	bad := []string{"", " ", "* * *", "61 * * * *", "* * * * * * *", "@dialy", "@every", "@every 0s", "@every -1s", "@every soon",
		"CRON_TZ=UTC * * * * *", "0 0 32 * *", "*/0 * * * *", "a b c d e"}
	for _, spec := range bad {
		if s, err := Parse(spec, time.UTC); err == nil {
			t.Errorf("Parse(%q) = %v, want an error", spec, s)
		}
	}
	if s, _ := Parse("@every 1500ms", time.UTC); s.Next(time.Unix(0, 0)) != time.Unix(0, 0).Add(1500*time.Millisecond) {
		t.Errorf("@every 1500ms is not exact")
	}
}

func TestSplitTimeZone(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ in, zone, rest string }{
		{"0 3 * * *", "", "0 3 * * *"},
		{"CRON_TZ=Europe/Berlin 0 3 * * *", "Europe/Berlin", "0 3 * * *"},
		{"TZ=Asia/Tokyo @daily", "Asia/Tokyo", "@daily"},
		{"CRON_TZ=UTC", "UTC", ""},
	} {
		zone, rest, err := SplitTimeZone(c.in)
		if err != nil || zone != c.zone || rest != c.rest {
			t.Errorf("SplitTimeZone(%q) = %q, %q, %v; want %q, %q", c.in, zone, rest, err, c.zone, c.rest)
		}
	}
	if _, _, err := SplitTimeZone("CRON_TZ= 0 3 * * *"); err == nil {
		t.Error("an empty zone was accepted")
	}
}

func TestCache(t *testing.T) {
	t.Parallel()
	var c Cache
	a, err := c.Parse("0 3 * * *", "Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := c.Parse("0 3 * * *", "Europe/Berlin"); a != b {
		t.Error("the second Parse did not come from the cache")
	}
	if b, _ := c.Parse("0 3 * * *", "UTC"); a == b {
		t.Error("another zone shares the schedule")
	}
	for _, zone := range []string{"Mars/Olympus", "Local", "../etc/passwd"} {
		if _, err := c.Parse("0 3 * * *", zone); err == nil {
			t.Errorf("zone %q accepted", zone)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"* * * * *", "0 3 * * *", "@every 90s", "*/5 1-3 * jan-mar mon,fri", "0 0 29 2 *", "@yearly"} {
		f.Add(s)
	}
	ny, _ := time.LoadLocation("America/New_York")
	from := time.Date(2026, 3, 8, 0, 0, 0, 0, ny)
	f.Fuzz(func(t *testing.T, spec string) {
		s, err := Parse(spec, ny)
		if err != nil {
			return
		}
		at := from
		for range 5 {
			next := s.Next(at)
			if next.IsZero() {
				return
			}
			if !next.After(at) {
				t.Fatalf("%q: Next(%v) = %v", spec, at, next)
			}
			at = next
		}
	})
}

func BenchmarkCalendarNext(b *testing.B) {
	for _, c := range []struct{ spec, zone string }{{"0 3 * * *", "UTC"}, {"0 3 * * *", "America/New_York"}, {"*/5 * * * * *", "UTC"}} {
		b.Run(fmt.Sprintf("%s/%s", c.spec, c.zone), func(b *testing.B) {
			s, _ := Parse(c.spec, mustLoad(b, c.zone))
			cal := s.(*Calendar)
			t := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			for b.Loop() {
				t = cal.next(t)
			}
		})
	}
}
