package boltstore

import (
	"context"

	"github.com/triggerkit/trigger"
)

var _ trigger.BatchFinisher = (*Store)(nil)

// FinishBatch records each outcome of fs as Finish would; see
// trigger.BatchFinisher. The outcomes are queued to the committer together,
// then waited for, so they share its next commits (one pair of fsyncs for
// the group rather than one per outcome).
func (s *Store) FinishBatch(ctx context.Context, fs []trigger.Finishing) []error {
	errs := make([]error, len(fs))
	ops := make([]*op, len(fs))
	leases := make([]*lease, len(fs))
	for i, f := range fs {
		ops[i], leases[i], errs[i] = s.queueFinish(ctx, f.ID, f.Token, f.Outcome)
	}
	for i := range fs {
		if ops[i] != nil {
			errs[i] = ops[i].wait(ctx)
		}
		if leases[i] != nil {
			s.finishDone(leases[i], errs[i])
		}
	}
	return errs
}
