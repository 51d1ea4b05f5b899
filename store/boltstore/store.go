package boltstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/triggerkit/trigger"
)

// Errors of this package, besides the trigger package's sentinels.
var (
	// ErrLocked is returned by Open when another process (or another Store
	// in this process) holds the file's lock for longer than
	// Options.OpenTimeout.
	ErrLocked = errors.New("boltstore: database file is locked by another process")
	// ErrFormat is returned by Open when the file was written by a newer
	// version of this package (or is not a trigger store).
	ErrFormat = errors.New("boltstore: unsupported file format")
	// ErrCorrupt is returned by Get, Claim, Finish, Cancel, Requeue,
	// Register, Pause and Unpause when the stored record of the trigger does
	// not decode. The error names the trigger's ID. Scans (Due, List, Purge)
	// skip such records and log them; Delete removes them.
	ErrCorrupt = errors.New("boltstore: corrupt trigger record")
	// ErrClosed is returned by every method after Close.
	ErrClosed = errors.New("boltstore: store closed")
)

// formatVersion is the version of the file layout (buckets, keys and record
// encoding), kept in the meta bucket. Open refuses a file with a newer
// version and upgrades an older one.
//
// Version 2 stopped indexing scheduled triggers by state, version 3
// completed ones; Open removes those entries from an older file. Version 4
// records may carry the fields of recurring triggers (PlannedAt apart from
// DueAt, Interval, MaxIterations, Paused), which earlier versions would
// report as corrupt: the version makes them refuse the file instead.
// Version 5 added the wait buckets (tokens and children) and the wait
// fields of a record (ParentID, Wait), in the bits after version 4's; Open
// creates the buckets in an older file. Older records need no change: they
// decode as before, with no recurring or wait fields. Version 6 stamps each
// wait token with the time of its last change, for PurgeTokens; Open
// rewrites the tokens of a version 5 file as changed at the upgrade (see
// upgradeTokens in wait.go). Version 7 gives each child its batch, the wait
// of its parent it counts in (see countChild in wait.go), in a new record
// field, which earlier versions would report as corrupt; Open notes the
// fencing tokens of an older file, as the children it holds have no batch.
const formatVersion = 7

// Options configures Open and Wrap. The zero value (or a nil *Options) is
// ready to use.
type Options struct {
	// OpenTimeout is how long Open waits for the file lock. bbolt locks the
	// file exclusively, so a file in use by another process (or another
	// Store in this process) cannot be opened; Open then fails with an error
	// wrapping ErrLocked instead of waiting forever. A negative value tries
	// once. Defaults to one second. Wrap ignores it.
	OpenTimeout time.Duration
	// NoSync turns off fsync: commits reach the operating system but not the
	// disk, so a machine crash or power loss may lose acknowledged writes or
	// corrupt the file. Only for tests. Defaults to false. Wrap ignores it
	// (set DB.NoSync yourself).
	NoSync bool
	// FileMode is the permission of a file Open creates. Defaults to 0600.
	FileMode os.FileMode
	// Logger receives reports of records that do not decode and of
	// background writes that fail. Defaults to slog.Default().
	Logger *slog.Logger
}

// Store is the bbolt trigger store. It is safe for concurrent use.
type Store struct {
	db     *bbolt.DB
	ownsDB bool
	log    *slog.Logger

	// mu guards the lease table and the marks of writes in flight; see
	// lease.go for the rules.
	mu        sync.RWMutex
	leases    map[string]*lease
	pending   map[string]chan struct{} // id -> done of the commit group writing it
	lastToken uint64                   // last fencing token handed out
	ceiling   uint64                   // highest token reserved on disk
	unbatched uint64                   // the token ceiling when the file took version 7; see countChild
	reserving bool                     // a reservation of more tokens is queued
	fresh     freshTable               // records just inserted; see fresh.go

	// The commit queue; see commit.go. The committer alone uses group and
	// gatherTimer; qmu guards the rest, up to closing.
	group       writeTx     // the group being committed, reused
	gatherTimer *time.Timer // ends gather's wait
	qmu         sync.Mutex
	queue       []*op
	spare       []*op // the array of a queue taken before, for reuse
	waiting     int   // ops in queue that a writer waits for (not lazy)
	wakeAt      int   // a write wakes the committer when this many wait (see wakeOn)
	// lazyTimer wakes the committer for lazy ops no durable write took
	// along; lazyArmed says it is running, lazyDue that it fired.
	lazyTimer *time.Timer
	lazyArmed bool
	lazyDue   bool
	closing   bool
	wake      chan struct{}
	loopDone  chan struct{}
	commits   atomic.Uint64 // transactions committed, for tests and benchmarks

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error

	reportMu sync.Mutex
	reported map[string]struct{}

	sweep tokenSweep // where PurgeTokens goes on; see wait.go
}

var _ trigger.Store = (*Store)(nil)

// Open opens the store in the bbolt file at path, creating the file if it
// does not exist. The Store holds the file's exclusive lock until Close: one
// process (and one Store) per file.
func Open(path string, opts *Options) (*Store, error) {
	o := opts.orDefaults()
	timeout := o.OpenTimeout
	switch {
	case timeout == 0:
		timeout = time.Second
	case timeout < 0:
		timeout = time.Nanosecond // bbolt tries the lock once
	}
	mode := o.FileMode
	if mode == 0 {
		mode = 0o600
	}
	db, err := bbolt.Open(path, mode, &bbolt.Options{
		Timeout: timeout,
		NoSync:  o.NoSync,
		// The hashmap freelist allocates in constant time; the array one
		// slows down as a big file fragments.
		FreelistType: bbolt.FreelistMapType,
	})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s is in use by another process, or by another Store in this one (waited %v)", ErrLocked, path, timeout)
	}
	if err != nil {
		return nil, fmt.Errorf("boltstore: open %s: %w", path, err)
	}
	s, err := newStore(db, true, o)
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

// wrapped holds the DBs a Store wraps: two Stores on one DB would keep two
// lease tables and could both claim a trigger.
var wrapped sync.Map

// Wrap returns a store that keeps its buckets (named "triggerkit.*") in db,
// an open, writable bbolt database that may hold other data too. Close does
// not close db. At most one Store may wrap a DB at a time, and db must not
// be opened by other means (read-only opens in other processes are refused
// by bbolt's lock anyway).
func Wrap(db *bbolt.DB, opts *Options) (*Store, error) {
	if db == nil {
		return nil, fmt.Errorf("%w: boltstore.Wrap needs a database", trigger.ErrInvalid)
	}
	if db.IsReadOnly() {
		return nil, fmt.Errorf("%w: boltstore.Wrap needs a writable database", trigger.ErrInvalid)
	}
	if _, loaded := wrapped.LoadOrStore(db, true); loaded {
		return nil, fmt.Errorf("%w: another Store already wraps this database", ErrLocked)
	}
	s, err := newStore(db, false, opts.orDefaults())
	if err != nil {
		wrapped.Delete(db)
		return nil, err
	}
	return s, nil
}

func (o *Options) orDefaults() Options {
	var r Options
	if o != nil {
		r = *o
	}
	if r.Logger == nil {
		r.Logger = slog.Default()
	}
	return r
}

func newStore(db *bbolt.DB, owns bool, o Options) (*Store, error) {
	var floor, unbatched uint64
	if err := db.Update(func(tx *bbolt.Tx) (err error) {
		floor, unbatched, err = setup(tx)
		return err
	}); err != nil {
		return nil, err
	}
	s := &Store{
		db:        db,
		ownsDB:    owns,
		log:       o.Logger,
		leases:    make(map[string]*lease),
		pending:   make(map[string]chan struct{}),
		lastToken: floor,
		ceiling:   floor + tokenBlock,
		unbatched: unbatched,
		wake:      make(chan struct{}, 1),
		loopDone:  make(chan struct{}),
		reported:  make(map[string]struct{}),
	}
	go s.run()
	return s, nil
}

// Bucket and key names. The buckets are top-level (a nested layout would
// rewrite the parent's page on every commit) and carry the "triggerkit."
// prefix, so that a wrapped DB can hold other data.
var (
	bucketMeta     = []byte("triggerkit.meta")
	bucketTriggers = []byte("triggerkit.triggers")
	bucketDue      = []byte("triggerkit.due")
	bucketState    = []byte("triggerkit.state")
	bucketFinal    = []byte("triggerkit.final")
	bucketTokens   = []byte("triggerkit.tokens")   // since version 5; see wait.go
	bucketChildren = []byte("triggerkit.children") // since version 5; see wait.go

	// waitBuckets are the buckets version 5 added.
	waitBuckets = [][]byte{bucketTokens, bucketChildren}

	keyFormat    = []byte("format")    // uint32: formatVersion
	keyTokens    = []byte("tokens")    // uint64: every token handed out is <= it
	keyUnbatched = []byte("unbatched") // uint64: keyTokens when Open upgraded the file to version 7; none if created since
)

// setup creates or checks the layout and reserves the first block of
// fencing tokens, returning the last token of the previous run and the
// token ceiling when the file took version 7 (zero if it was created
// since: see countChild).
func setup(tx *bbolt.Tx) (floor, unbatched uint64, err error) {
	data := [][]byte{bucketTriggers, bucketDue, bucketState, bucketFinal, bucketTokens, bucketChildren}
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		for _, name := range data {
			if tx.Bucket(name) != nil {
				return 0, 0, fmt.Errorf("%w: bucket %q exists without %q", ErrFormat, name, bucketMeta)
			}
		}
		for _, name := range append(data, bucketMeta) {
			if _, err := tx.CreateBucket(name); err != nil {
				return 0, 0, fmt.Errorf("boltstore: create buckets: %w", err)
			}
		}
		meta = tx.Bucket(bucketMeta)
		if err := meta.Put(keyFormat, binary.BigEndian.AppendUint32(nil, formatVersion)); err != nil {
			return 0, 0, fmt.Errorf("boltstore: write format version: %w", err)
		}
	}
	v := meta.Get(keyFormat)
	if len(v) != 4 {
		return 0, 0, fmt.Errorf("%w: no format version in the meta bucket", ErrFormat)
	}
	switch version := binary.BigEndian.Uint32(v); {
	case version > formatVersion:
		return 0, 0, fmt.Errorf("%w: the file has format version %d, this build reads up to %d: upgrade triggerkit", ErrFormat, version, formatVersion)
	case version < 1:
		return 0, 0, fmt.Errorf("%w: format version %d", ErrFormat, version)
	}
	version := binary.BigEndian.Uint32(v)
	if version < 5 {
		for _, name := range waitBuckets {
			if tx.Bucket(name) != nil {
				// Only a build of the waits branch before it took format
				// version 5 wrote these into an older version's file: its
				// record fields have other bits than version 5's.
				return 0, 0, fmt.Errorf("%w: format version %d with the wait bucket %q: the file was written by a pre-release build of waits", ErrFormat, version, name)
			}
		}
	}
	if version < formatVersion {
		if err := upgrade(tx, meta, version); err != nil {
			return 0, 0, fmt.Errorf("boltstore: upgrade from format version %d: %w", version, err)
		}
	}
	for _, name := range data {
		if tx.Bucket(name) == nil {
			return 0, 0, fmt.Errorf("%w: missing bucket %q", ErrFormat, name)
		}
	}
	switch v := meta.Get(keyUnbatched); {
	case len(v) == 8:
		unbatched = binary.BigEndian.Uint64(v)
	case v != nil:
		return 0, 0, fmt.Errorf("%w: bad %q in the meta bucket", ErrFormat, keyUnbatched)
	}
	floor, err = reserveTokens(meta)
	return floor, unbatched, err
}

// upgrade brings a file of an older format version up to formatVersion, in
// the transaction that opens it: it drops the state index entries of the
// states the current version does not index (scheduled since version 2,
// completed since version 3), creates the wait buckets (version 5), stamps
// the wait tokens (version 6), notes the token ceiling (version 7: the
// children of the file have no batch, see countChild) and writes the new
// version. Records need no change: the fields of versions 4, 5 and 7 take
// new bits, so older records decode as they are.
func upgrade(tx *bbolt.Tx, meta *bbolt.Bucket, from uint32) error {
	if b := tx.Bucket(bucketState); b != nil {
		c := b.Cursor()
		for _, st := range trigger.States() {
			if stateIndexed(st) {
				continue
			}
			prefix := []byte{byte(st)}
			for k, _ := c.Seek(prefix); k != nil && k[0] == prefix[0]; k, _ = c.Seek(prefix) {
				if err := c.Delete(); err != nil {
					return err
				}
			}
		}
	}
	if from < 5 {
		for _, name := range waitBuckets {
			if _, err := tx.CreateBucket(name); err != nil {
				return err
			}
		}
	}
	if from < 6 {
		if err := upgradeTokens(tx, time.Now()); err != nil {
			return err
		}
	}
	if from < 7 {
		var ceiling uint64 // none stored: no token was handed out
		if v := meta.Get(keyTokens); len(v) == 8 {
			ceiling = binary.BigEndian.Uint64(v)
		}
		if err := meta.Put(keyUnbatched, binary.BigEndian.AppendUint64(nil, ceiling)); err != nil {
			return err
		}
	}
	return meta.Put(keyFormat, binary.BigEndian.AppendUint32(nil, formatVersion))
}

// buckets are the store's buckets in a write transaction.
type buckets struct {
	meta, triggers, due, state, final *bbolt.Bucket
	tokens, children                  *bbolt.Bucket
}

func bucketsOf(tx *bbolt.Tx) buckets {
	b := buckets{
		meta:     tx.Bucket(bucketMeta),
		triggers: tx.Bucket(bucketTriggers),
		due:      tx.Bucket(bucketDue),
		state:    tx.Bucket(bucketState),
		final:    tx.Bucket(bucketFinal),
		tokens:   tx.Bucket(bucketTokens),
		children: tx.Bucket(bucketChildren),
	}
	// Keys mostly arrive in order: IDs are time-ordered UUIDs by default and
	// due times mostly grow. bbolt splits a full page in half by default,
	// which leaves pages filled in order half empty; filling them to 90%
	// makes the file (and the pages a commit writes) much smaller.
	for _, bk := range []*bbolt.Bucket{b.triggers, b.due, b.state, b.final, b.children} {
		bk.FillPercent = fillPercent
	}
	return b
}

var fillPercent = 0.9

// Close commits the writes already queued, stops the committer and closes
// the file (unless the Store was made by Wrap). Leases die with the Store: an
// owner still running a trigger gets ErrLeaseLost from a Store opened later,
// and the trigger is claimable there at once. Close is idempotent; every
// other method returns ErrClosed after it.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.qmu.Lock()
		s.closing = true
		if s.lazyTimer != nil {
			s.lazyTimer.Stop()
		}
		s.qmu.Unlock()
		s.signal()
		<-s.loopDone
		if s.ownsDB {
			s.closeErr = s.db.Close()
		} else {
			wrapped.Delete(s.db)
		}
	})
	return s.closeErr
}

// ready is what every method checks first: ctx's error, then the checks of
// its arguments (any non-nil error), then ErrClosed after Close.
func (s *Store) ready(ctx context.Context, checks ...error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, err := range checks {
		if err != nil {
			return err
		}
	}
	if s.closed.Load() {
		return ErrClosed
	}
	return nil
}

// dbErr translates an error of bbolt itself.
func (s *Store) dbErr(err error) error {
	if errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return fmt.Errorf("boltstore: %w", err)
}

// checkID refuses an empty ID with ErrInvalid.
func checkID(id string) error {
	return invalidIf(id == "", "empty trigger ID")
}

// invalidIf returns an error wrapping trigger.ErrInvalid if bad is true.
func invalidIf(bad bool, format string, args ...any) error {
	if !bad {
		return nil
	}
	return fmt.Errorf("%w: "+format, append([]any{trigger.ErrInvalid}, args...)...)
}

func corrupt(id string, err error) error {
	return fmt.Errorf("%w: trigger %q: %v", ErrCorrupt, id, err)
}

// reportCorrupt logs a record a scan skipped, once per ID.
func (s *Store) reportCorrupt(id string, err error) {
	s.reportOnce(id, "boltstore: skipping a trigger record that does not decode; Delete removes it",
		slog.String("trigger_id", id), slog.Any("error", err))
}

// reportOnce logs msg the first time it is called with key (the set of
// reported keys is bounded; past it, every report is logged).
func (s *Store) reportOnce(key, msg string, attrs ...any) {
	s.reportMu.Lock()
	_, seen := s.reported[key]
	if !seen && len(s.reported) < 4096 {
		s.reported[key] = struct{}{}
	}
	s.reportMu.Unlock()
	if !seen {
		s.log.Error(msg, attrs...)
	}
}
