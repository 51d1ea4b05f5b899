package trigger

import (
	"fmt"
	"log/slog"
	"maps"
	"os"
	"time"
)

// Config configures a Scheduler. The zero Config is valid: every field
// documents its zero value. A Config must not change after it is passed to
// New.
type Config struct {
	// Workers is how many consumers may run at once. Defaults to 16.
	Workers int

	// ScanInterval is how often the scheduler reads the store for triggers
	// that are due and that it does not hold yet: triggers due after the
	// horizon when they were scheduled, triggers of other nodes whose lease
	// expired, triggers whose timer was lost. Defaults to 5s.
	ScanInterval time.Duration
	// Horizon bounds memory: only triggers due within Horizon of now are
	// armed in the timing wheel; later ones stay in the store until a scan
	// brings them in. It must be at least twice ScanInterval. Defaults to
	// 1m, or twice ScanInterval when that is longer.
	Horizon time.Duration
	// Tick is the resolution of the timing wheel: a trigger fires within one
	// tick after its due time, never before. Between 100µs and 1s.
	// Defaults to 1ms. While workers are free, the wheel wakes at least a
	// tenth of a tick apart (100µs by default) and starts together what
	// fell due meanwhile. Where triggers are sparse, each wake-up costs
	// more processor time than the run it starts, so a longer tick trades
	// how soon a run starts for processor time: 10ms starts runs as soon
	// as Go's own timers would, for a third to three fifths less processor
	// time than the default (the README's performance section has
	// figures).
	Tick time.Duration
	// ScanLimit is the page size of store scans and the most overdue
	// triggers one scan takes in at once (more are fetched as workers free
	// up). Defaults to 1000.
	ScanLimit int

	// LeaseDuration is how long a claim lasts without a heartbeat. A node
	// that dies holds its triggers this long before others take them over.
	// Defaults to 30s.
	LeaseDuration time.Duration
	// HeartbeatInterval is how often the leases of running triggers are
	// extended. It must be shorter than LeaseDuration. Defaults to a third
	// of LeaseDuration.
	HeartbeatInterval time.Duration
	// ClaimAhead is how long before its due time a trigger armed in the
	// timing wheel is claimed, where claiming it at its due time would
	// make its run late: when the store's claims are slow (50µs or more:
	// a commit to disk, a round trip to a database server), or when the
	// trigger shares its due instant with one armed before it (the CRON
	// triggers of one schedule: ten thousand due in the same second are
	// claimed before it and start within milliseconds of it). Other
	// triggers, with a fast store, are claimed at their due time, which
	// costs less. The scheduler times its claims to tell; until it has,
	// claims count as slow. A run claimed ahead still starts at its due
	// time, never before. Meanwhile the trigger is running in the store
	// (its attempt counted, its lease held), its run holds a slot of its
	// queue, and Cancel drops the run. A trigger scheduled closer to its
	// due time than ClaimAhead is claimed at once if it is to be claimed
	// ahead. It must be shorter than LeaseDuration. Negative claims every
	// trigger at its due time. Defaults to 50ms, or half of LeaseDuration
	// when that is shorter.
	ClaimAhead time.Duration
	// RunTimeout, when positive, cancels the context of a run that takes
	// longer; the run then fails like any other. Zero means no limit.
	RunTimeout time.Duration

	// MaxAttempts is how many runs a trigger gets when its own MaxAttempts
	// is zero. Defaults to 10.
	MaxAttempts int
	// RetryBase is the delay before the first retry; each later retry
	// waits RetryFactor times longer, with ±20% jitter. Defaults to 1s.
	RetryBase time.Duration
	// RetryMax caps every retry delay, including those asked for with
	// RetryAfter and Snooze. Defaults to 1h.
	RetryMax time.Duration
	// RetryFactor is the growth of the retry delay. Defaults to 2.
	RetryFactor float64

	// Retention is how long completed and canceled triggers stay in the
	// store before they are purged, and how long the store remembers a wait
	// token that no trigger waits for (an early resume no waiter took, a
	// delivered token, the token of a wait that ended otherwise) after its
	// last change: a duplicate resume later than that is taken as new and
	// stored, and an early resume is dropped if its waiter has not parked by
	// then (see [Scheduler.Resume]). Negative keeps them forever. Defaults to
	// 24h.
	Retention time.Duration
	// FailedRetention is how long failed triggers stay in the store (for
	// inspection and Retry) before they are purged. Negative keeps them
	// forever. Defaults to 30 days.
	FailedRetention time.Duration

	// Misfire is the misfire policy of CRON triggers whose own Misfire is
	// zero (MisfireDefault). Defaults to MisfireFireOnce.
	Misfire MisfirePolicy
	// MisfireGrace is how late a CRON occurrence may start and still count
	// as on time: one claimed later than that after its due time is a
	// misfire, handled by the trigger's policy. Negative means no grace (any
	// lateness is a misfire). Defaults to 1m.
	MisfireGrace time.Duration
	// MisfireCap is the most missed occurrences MisfireFireAll runs after a
	// downtime; older ones are skipped. At most 10,000. Defaults to 100.
	MisfireCap int
	// Schedules are custom recurring schedules, for what a cron expression
	// cannot say (the last working day of the month, a list of dates). A
	// CRON trigger refers to one by name, with Cron "@name": a store cannot
	// keep a Go value, so the trigger keeps the name and every scheduler
	// sharing the store must be given the same schedules. Next must return
	// a time after its argument, or the zero time when the schedule has
	// ended, and must be safe for concurrent use. Names are letters,
	// digits, '-', '_' and '.', and may not be the descriptors of cron
	// expressions (daily, every, ...). Defaults to none.
	Schedules map[string]Schedule

	// QueueLimits caps how many triggers of a queue (Trigger.Queue) run at
	// once on this scheduler: a run takes a slot of its queue while it runs
	// and frees it when it finishes or parks in a wait. Triggers of a full
	// queue wait, unclaimed, while other queues' triggers run. A trigger
	// started by Fire runs even over its queue's limit (it still takes a
	// slot). A queue not in the map, and the default queue "" unless it is
	// in the map, is limited by Workers only. Each limit must be positive.
	// Defaults to no limits.
	QueueLimits map[string]int

	// NodeID names this scheduler as the owner of its claims. Schedulers
	// sharing a store must have different IDs. Defaults to
	// "<hostname>-<pid>-<random>".
	NodeID string
	// Logger receives the scheduler's logs. Defaults to slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() (Config, error) {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.Workers == 0 {
		c.Workers = 16
	}
	def(&c.ScanInterval, 5*time.Second)
	def(&c.Horizon, max(time.Minute, 2*c.ScanInterval))
	def(&c.Tick, time.Millisecond)
	if c.ScanLimit == 0 {
		c.ScanLimit = 1000
	}
	def(&c.LeaseDuration, 30*time.Second)
	def(&c.HeartbeatInterval, c.LeaseDuration/3)
	def(&c.ClaimAhead, min(50*time.Millisecond, c.LeaseDuration/2))
	if c.ClaimAhead < 0 {
		c.ClaimAhead = 0
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 10
	}
	def(&c.RetryBase, time.Second)
	def(&c.RetryMax, time.Hour)
	if c.RetryFactor == 0 {
		c.RetryFactor = 2
	}
	def(&c.Retention, 24*time.Hour)
	def(&c.FailedRetention, 30*24*time.Hour)
	if c.Misfire == MisfireDefault {
		c.Misfire = MisfireFireOnce
	}
	def(&c.MisfireGrace, time.Minute)
	if c.MisfireGrace < 0 {
		c.MisfireGrace = 0
	}
	if c.MisfireCap == 0 {
		c.MisfireCap = 100
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.NodeID == "" {
		host, _ := os.Hostname()
		c.NodeID = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), newID(time.Now())[24:])
	}

	switch {
	case c.Workers < 0 || c.Workers > 1<<16:
		return c, invalidf("config: Workers = %d; use 1 to 65536, or 0 for the default 16", c.Workers)
	case c.ScanInterval < 0:
		return c, invalidf("config: ScanInterval = %v is negative; use 0 for the default 5s", c.ScanInterval)
	case c.Tick < 100*time.Microsecond || c.Tick > time.Second:
		return c, invalidf("config: Tick = %v; use 100µs to 1s, or 0 for the default 1ms", c.Tick)
	case c.ScanInterval < c.Tick:
		return c, invalidf("config: ScanInterval = %v is shorter than Tick = %v", c.ScanInterval, c.Tick)
	case c.Horizon < 2*c.ScanInterval:
		return c, invalidf("config: Horizon = %v must be at least twice ScanInterval = %v", c.Horizon, c.ScanInterval)
	case c.ScanLimit < 0:
		return c, invalidf("config: ScanLimit = %d is negative; use 0 for the default 1000", c.ScanLimit)
	case c.LeaseDuration < 0:
		return c, invalidf("config: LeaseDuration = %v is negative; use 0 for the default 30s", c.LeaseDuration)
	case c.HeartbeatInterval <= 0 || c.HeartbeatInterval >= c.LeaseDuration:
		return c, invalidf("config: HeartbeatInterval = %v must be positive and shorter than LeaseDuration = %v", c.HeartbeatInterval, c.LeaseDuration)
	case c.ClaimAhead >= c.LeaseDuration:
		return c, invalidf("config: ClaimAhead = %v must be shorter than LeaseDuration = %v", c.ClaimAhead, c.LeaseDuration)
	case c.RunTimeout < 0:
		return c, invalidf("config: RunTimeout = %v is negative; use 0 for no limit", c.RunTimeout)
	case c.MaxAttempts < 0:
		return c, invalidf("config: MaxAttempts = %d is negative; use 0 for the default 10", c.MaxAttempts)
	case c.RetryBase < 0 || c.RetryMax < 0:
		return c, invalidf("config: RetryBase = %v and RetryMax = %v must not be negative", c.RetryBase, c.RetryMax)
	case c.RetryBase > c.RetryMax:
		return c, invalidf("config: RetryBase = %v is longer than RetryMax = %v", c.RetryBase, c.RetryMax)
	case c.RetryFactor < 1:
		return c, invalidf("config: RetryFactor = %v must be at least 1", c.RetryFactor)
	case !c.Misfire.Valid():
		return c, invalidf("config: Misfire = %d is not a misfire policy; use MisfireFireOnce, MisfireSkip or MisfireFireAll", c.Misfire)
	case c.MisfireCap < 0 || c.MisfireCap > maxMisfireCap:
		return c, invalidf("config: MisfireCap = %d; use 1 to %d, or 0 for the default 100", c.MisfireCap, maxMisfireCap)
	}
	for name, sched := range c.Schedules {
		if err := checkScheduleName(name, sched); err != nil {
			return c, err
		}
	}
	if err := checkQueueLimits(c.QueueLimits); err != nil {
		return c, err
	}
	c.QueueLimits = maps.Clone(c.QueueLimits)
	return c, nil
}
