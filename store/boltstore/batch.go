package boltstore

import (
	"context"
	"sync"

	"github.com/triggerkit/trigger"
)

var _ trigger.BatchFinisher = (*Store)(nil)

// FinishBatch records each outcome of fs as Finish would; see
// trigger.BatchFinisher. The outcomes are queued to the committer together,
// so they share its next commits (one pair of fsyncs for the group rather
// than one per outcome).
func (s *Store) FinishBatch(ctx context.Context, fs []trigger.Finishing) []error {
	errs := make([]error, len(fs))
	if len(fs) == 1 {
		errs[0] = s.Finish(ctx, fs[0].ID, fs[0].Token, fs[0].Outcome)
		return errs
	}
	var wg sync.WaitGroup
	for i := range fs {
		wg.Go(func() { errs[i] = s.Finish(ctx, fs[i].ID, fs[i].Token, fs[i].Outcome) })
	}
	wg.Wait()
	return errs
}
