package trigger

import (
	"fmt"
	"strings"
	"time"

	"github.com/triggerkit/trigger/internal/cronsched"
)

// Schedule is a recurring schedule: Next returns the first activation
// strictly after t, or the zero time when the schedule has ended. A
// cron.Schedule of github.com/robfig/cron/v3 satisfies it. Name custom
// schedules in Config.Schedules and refer to them from a CRON trigger as
// "@name".
type Schedule interface {
	Next(t time.Time) time.Time
}

// ParseCron parses a CRON trigger's spec, as Schedule and Register read
// Trigger.Cron: five fields, or six with a leading seconds field, or a
// descriptor (@yearly, @monthly, @weekly, @daily, @hourly, @every
// <duration>), read in the IANA time zone zone ("" is UTC), or in the zone
// of a "CRON_TZ=<zone> " prefix. The schedule follows the daylight-saving
// rules of the package documentation. Bad specs and unknown zones get an
// error wrapping ErrInvalid. Named schedules (Config.Schedules) are a
// scheduler's: ParseCron does not know them.
func ParseCron(spec, zone string) (Schedule, error) {
	spec, zone, err := splitZone(spec, zone)
	if err != nil {
		return nil, invalidf("%v", err)
	}
	s, err := crons.Parse(spec, zone)
	if err != nil {
		return nil, invalidf("cron spec %q: %v", spec, err)
	}
	return s, nil
}

// crons caches parsed specs for every scheduler of the process: parsing
// costs microseconds, and registering 10,000 triggers with one spec should
// parse it once.
var crons cronsched.Cache

// maxMisfireCap bounds Config.MisfireCap: catching up more runs than that
// after a downtime is not a policy but a backlog.
const maxMisfireCap = 10000

// descriptors are the names a custom schedule may not take.
var descriptors = []string{"yearly", "annually", "monthly", "weekly", "daily", "midnight", "hourly", "every"}

func checkScheduleName(name string, s Schedule) error {
	switch {
	case s == nil:
		return invalidf("config: Schedules[%q] is nil", name)
	case name == "" || strings.Trim(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") != "":
		return invalidf("config: schedule name %q: use letters, digits, '-', '_' and '.'", name)
	}
	for _, d := range descriptors {
		if strings.EqualFold(name, d) {
			return invalidf("config: schedule name %q is a cron descriptor (@%s); choose another", name, d)
		}
	}
	return nil
}

// splitZone moves a "CRON_TZ=" or "TZ=" prefix of spec into the zone. A
// prefix that names another zone than a non-empty zone is an error.
func splitZone(spec, zone string) (string, string, error) {
	prefixZone, rest, err := cronsched.SplitTimeZone(spec)
	if err != nil {
		return "", "", fmt.Errorf("cron spec %q: %w", spec, err)
	}
	if prefixZone != "" {
		if zone != "" && zone != prefixZone {
			return "", "", fmt.Errorf("cron spec %q names time zone %q but TimeZone is %q; give it once", spec, prefixZone, zone)
		}
		zone = prefixZone
	}
	return rest, zone, nil
}

// schedule returns the schedule of a CRON trigger: a named one of
// Config.Schedules, or its parsed spec. It checks what can be checked
// without a clock: an "@every" interval must be at least a tick.
func (s *Scheduler) schedule(t *Trigger) (Schedule, error) {
	if t.Cron == "" {
		return nil, invalidf("trigger %q: a CRON trigger needs a Cron spec, such as \"0 3 * * *\" or \"@every 1h\"", t.ID)
	}
	if name, ok := strings.CutPrefix(t.Cron, "@"); ok {
		if sched, ok := s.cfg.Schedules[name]; ok {
			if t.TimeZone != "" {
				return nil, invalidf("trigger %q: TimeZone %q does not apply to the named schedule %q", t.ID, t.TimeZone, t.Cron)
			}
			return custom{sched}, nil
		}
	}
	sched, err := crons.Parse(t.Cron, t.TimeZone)
	if err != nil {
		hint := ""
		if strings.HasPrefix(t.Cron, "@") && !strings.HasPrefix(t.Cron, "@every ") {
			hint = " (not a cron descriptor, nor a name in Config.Schedules)"
		}
		return nil, invalidf("trigger %q: cron spec %q in time zone %q: %v%s", t.ID, t.Cron, t.TimeZone, err, hint)
	}
	if e, ok := sched.(cronsched.Every); ok && time.Duration(e) < s.cfg.Tick {
		return nil, invalidf("trigger %q: %q is shorter than the scheduler's tick %v", t.ID, t.Cron, s.cfg.Tick)
	}
	return sched, nil
}

// custom guards a schedule of Config.Schedules: a panic in Next, or a Next
// that does not move forward, ends the schedule instead of the scheduler.
type custom struct{ s Schedule }

func (c custom) Next(t time.Time) (next time.Time) {
	defer func() {
		if recover() != nil {
			next = time.Time{}
		}
	}()
	if next = c.s.Next(t); !next.After(t) {
		return time.Time{}
	}
	return next
}

// prepareRecurring checks the recurring fields of a trigger about to be
// saved and fills its first due time: the first occurrence after now for a
// CRON trigger without one, now for a LOOP trigger without one. It moves a
// CRON_TZ prefix of the spec into TimeZone, so that one schedule has one
// spelling in the store.
func (s *Scheduler) prepareRecurring(t *Trigger, now time.Time) error {
	switch t.Type {
	case TypeCron:
		spec, zone, err := splitZone(t.Cron, t.TimeZone)
		if err != nil {
			return invalidf("trigger %q: %v", t.ID, err)
		}
		t.Cron, t.TimeZone = spec, zone
		sched, err := s.schedule(t)
		if err != nil {
			return err
		}
		if t.DueAt.IsZero() {
			if t.DueAt = sched.Next(now); t.DueAt.IsZero() {
				return invalidf("trigger %q: cron spec %q has no occurrence after %v", t.ID, t.Cron, now)
			}
		}
	case TypeLoop:
		if t.Interval < s.cfg.Tick {
			return invalidf("trigger %q: a LOOP trigger needs an Interval of at least the tick %v, not %v", t.ID, s.cfg.Tick, t.Interval)
		}
		if t.DueAt.IsZero() {
			t.DueAt = now
		}
	}
	if t.Type != TypeCron && (t.Cron != "" || t.TimeZone != "") {
		return invalidf("trigger %q: Cron and TimeZone are for CRON triggers, not %s", t.ID, t.Type)
	}
	if t.Type != TypeLoop && (t.Interval != 0 || t.MaxIterations != 0) {
		return invalidf("trigger %q: Interval and MaxIterations are for LOOP triggers, not %s", t.ID, t.Type)
	}
	return nil
}
