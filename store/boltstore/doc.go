// Package boltstore is the durable trigger store for a single binary: a
// [trigger.Store] in one bbolt file, with no server to run. A Store is safe
// for concurrent use.
//
// # Durability
//
// Save, SaveBatch, Finish, Cancel, Requeue, Delete, Purge, Register, Pause
// and Unpause return only once their change is committed and synced to
// disk: kill the process (or the machine) at any instant after they return
// and the change is there when the file is opened again. A call that returns an error changed
// nothing. If the call's context ends while its write is still queued, the
// write is withdrawn and the call returns ctx.Err() (nothing was written);
// once the committer has taken the write, the call waits for that commit
// and reports its outcome.
//
// Claim and Extend do not wait for the disk (see below).
//
// # Group commit
//
// Writes from all goroutines go through one committer, which applies
// everything queued in one bbolt transaction and commits it once (bbolt
// syncs the file twice per commit, whatever its size). Throughput therefore
// grows with the number of concurrent writers instead of being one commit
// per trigger, and a lone writer waits for no batching delay. Each write is
// checked before it is applied, so a failing write (a duplicate ID, a stale
// fencing token) fails alone; Finish and its follow-ups, and a SaveBatch,
// are applied together or not at all.
//
// # One process per file, and what it means for leases
//
// bbolt locks the file exclusively: one process, and one Store, uses a file
// at a time. Open fails after Options.OpenTimeout (one second by default)
// with an error wrapping [ErrLocked] when another process or Store has the
// file. Schedulers of one process may share the Store; schedulers of several
// processes need a shared store such as PostgreSQL.
//
// So a lease can only belong to this process, and it cannot outlive it.
// Leases are kept in memory, and a claim costs no sync: its record (state
// running, owner, fencing token, attempt) rides with the next commit of
// other writes, or gets a commit of its own when none comes within 20 ms.
// After a crash the trigger is therefore claimable at once, its next claim
// is marked Recovered, and the interrupted run counts as an attempt; a crash
// within 20 ms of a claim may lose its record, and then that run is not
// counted. Extend changes the deadline in memory only. Close ends every
// lease: a Store opened later reports ErrLeaseLost to a previous owner.
//
// Fencing tokens grow across restarts: tokens are reserved on disk in blocks
// and each Open starts above everything reserved before.
//
// # Memory
//
// Nothing is loaded at Open, and no trigger is kept in memory except the
// lease table (one small entry per trigger claimed and not yet finished)
// and the records of up to 1,024 triggers just saved and due within a
// second, which their claims take instead of reading them back.
// Due is a range scan of an index ordered by due time, so a scheduler that
// asks for what is due within its horizon reads only that, however many
// triggers wait on disk.
//
// # File format
//
// Everything lives in buckets named "triggerkit.*" (so a database given to
// [Wrap] can hold other data): a meta bucket with the file format version
// and the token reservation, the records keyed by trigger ID, three index
// buckets (due time, state, and final state by update time) and two for
// waits (wait tokens, and the children of each parent). The format version
// is 7; Open upgrades a file of any older version (versions 2 and 3 dropped
// the state index entries of scheduled, then completed triggers, which List
// finds by a scan of the records; version 4 added the fields of recurring
// triggers to records; version 5 the wait buckets and the wait fields of
// records; version 6 the time of a wait token's last change, which Open
// sets to the time of the upgrade for the tokens of a version 5 file, in
// the transaction that opens it; version 7 the batch of a child, the wait
// of its parent it counts in, which the children of an older file lack:
// Open notes the file's fencing tokens then, and such a child counts only
// in the wait its parent was in at the upgrade, if any) and refuses one of
// a newer version with [ErrFormat]. A file Open upgraded cannot be opened
// by an older build.
//
// Wait tokens stay until [Store.PurgeTokens] deletes them (the scheduler
// calls it every minute, with Config.Retention). The tokens bucket is
// ordered by key, so a purge reads every token, a page of 1,024 per read
// transaction; the stale ones of each page are deleted in one write of the
// commit group, committed and synced before the next page. Records use
// a compact, versioned binary
// encoding (see codec.go). A record that does not decode is reported with
// its ID ([ErrCorrupt] from Get, a log entry from scans, which skip it); the
// rest of the store keeps working, and Delete removes the record.
//
// Times are stored to the nanosecond in UTC: a trigger read back has its
// times in UTC, without monotonic clock readings.
package boltstore
