// Package cronsched turns the schedule specs of CRON triggers into Next
// functions: cron expressions (parsed with github.com/robfig/cron/v3) read in
// a time zone with well-defined daylight-saving behaviour, and "@every"
// intervals.
//
// # Daylight saving time
//
// A cron expression names wall-clock times. robfig/cron evaluates it on the
// zone's clock as it goes, which fires twice for a time in the hour that
// repeats when clocks go back, and never for a time in the hour that is
// skipped when they go forward. A [Calendar] follows the rules of the
// classic cron daemons instead:
//
//   - A wall-clock time that does not exist (clocks jump from 02:00 to 03:00)
//     fires at the instant of the jump, once, however many of the skipped
//     times the expression names: "30 2 * * *" runs at 03:00 on that day.
//   - A wall-clock time that happens twice (clocks go back from 02:00 to
//     01:00) fires at its first occurrence only: "30 1 * * *" runs at 01:30
//     before the change, not again an hour later.
//   - Except when the expression runs every hour (its hour field matches all
//     24 hours, as in "*/15 * * * *" or "@hourly"): such a schedule follows
//     real time and fires in both passes of the repeated hour, so an hourly
//     job does not pause for two hours.
//
// Every result is an instant strictly after the argument, at a whole second
// of the zone's wall clock, and each instant is returned once.
package cronsched

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/robfig/cron/v3"
)

// Schedule is a recurring schedule: Next returns the first activation
// strictly after t, or the zero time when there is none.
type Schedule interface {
	Next(t time.Time) time.Time
}

// parser reads the five standard fields with an optional leading seconds
// field, and the descriptors (@daily, @hourly, ...).
var parser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Parse parses spec, a cron expression or descriptor without a time zone
// prefix, as a schedule read in loc. "@every <duration>" is an [Every] of
// exactly that duration (robfig/cron would round it to whole seconds).
func Parse(spec string, loc *time.Location) (sched Schedule, err error) {
	spec = strings.TrimSpace(spec)
	switch {
	case spec == "":
		return nil, errors.New("empty spec")
	case loc == nil:
		return nil, errors.New("nil location")
	case strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ="):
		return nil, errors.New("the time zone prefix must come first, once")
	}
	if d, ok := strings.CutPrefix(spec, "@every "); ok {
		iv, err := time.ParseDuration(strings.TrimSpace(d))
		if err != nil {
			return nil, fmt.Errorf("@every: %w", err)
		}
		if iv <= 0 {
			return nil, fmt.Errorf("@every %v: the interval must be positive", iv)
		}
		return Every(iv), nil
	}
	defer func() {
		// robfig/cron has panicked on malformed input before; never let
		// user input crash the caller.
		if v := recover(); v != nil {
			sched, err = nil, fmt.Errorf("malformed spec: %v", v)
		}
	}()
	s, err := parser.Parse(spec)
	if err != nil {
		return nil, err
	}
	ss, ok := s.(*cron.SpecSchedule)
	if !ok {
		return nil, fmt.Errorf("unsupported spec %q", spec)
	}
	return newCalendar(ss, loc), nil
}

// SplitTimeZone separates a leading "CRON_TZ=<zone> " or "TZ=<zone> " prefix
// from spec. zone is empty when spec has no prefix.
func SplitTimeZone(spec string) (zone, rest string, err error) {
	spec = strings.TrimSpace(spec)
	for _, p := range []string{"CRON_TZ=", "TZ="} {
		if after, ok := strings.CutPrefix(spec, p); ok {
			zone, rest, _ = strings.Cut(after, " ")
			if zone == "" {
				return "", "", fmt.Errorf("%s prefix without a time zone", p)
			}
			return zone, strings.TrimSpace(rest), nil
		}
	}
	return "", spec, nil
}

// Every is a schedule that fires at a fixed interval: Next(t) is t + the
// interval, to the nanosecond.
type Every time.Duration

// Next returns t plus the interval.
func (e Every) Next(t time.Time) time.Time { return t.Add(time.Duration(e)) }

// Cache parses schedules once per (spec, zone) pair: parsing a cron
// expression and loading a zone cost far more than computing an occurrence.
// It holds at most maxCached schedules; past that, Parse still works but
// does not remember. It is safe for concurrent use.
type Cache struct {
	m sync.Map // key -> Schedule
	n atomic.Int64
}

type key struct{ spec, zone string }

const maxCached = 4096

// Parse returns the schedule of spec (without a time zone prefix) read in
// the IANA zone named zone ("" is UTC).
func (c *Cache) Parse(spec, zone string) (Schedule, error) {
	k := key{spec, zone}
	if s, ok := c.m.Load(k); ok {
		return s.(Schedule), nil
	}
	loc, err := LoadLocation(zone)
	if err != nil {
		return nil, err
	}
	s, err := Parse(spec, loc)
	if err != nil {
		return nil, err
	}
	if c.n.Load() < maxCached {
		if prev, loaded := c.m.LoadOrStore(k, s); loaded {
			return prev.(Schedule), nil
		}
		c.n.Add(1)
	}
	return s, nil
}

var (
	locations  sync.Map // zone name -> *time.Location
	nLocations atomic.Int64
)

// LoadLocation is time.LoadLocation with a cache (it reads the zone database
// on every call). "" and "UTC" are UTC; "Local" is refused, as a schedule
// that depends on the machine's zone fires at different times on different
// nodes.
func LoadLocation(zone string) (*time.Location, error) {
	switch zone {
	case "", "UTC":
		return time.UTC, nil
	case "Local":
		return nil, errors.New(`time zone "Local" differs between machines; name the zone, such as "Europe/Berlin"`)
	}
	if l, ok := locations.Load(zone); ok {
		return l.(*time.Location), nil
	}
	loc, err := time.LoadLocation(zone)
	if err != nil {
		return nil, fmt.Errorf("unknown time zone %q: %w", zone, err)
	}
	if nLocations.Load() < maxCached {
		if _, loaded := locations.LoadOrStore(zone, loc); !loaded {
			nLocations.Add(1)
		}
	}
	return loc, nil
}
