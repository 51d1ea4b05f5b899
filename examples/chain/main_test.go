package main

import (
	"context"
	"strings"
	"testing"
)

func TestChainPath(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		amount float64
		want   string
	}{
		{250, "start -> review -> review(sub-flow: risk-check) -> approval(by alice) -> end via approved"},
		{50, "start -> end via small"},
	} {
		path, err := run(context.Background(), t.TempDir(), tc.amount)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(path, " -> "); got != tc.want {
			t.Errorf("amount %v: path %q, want %q", tc.amount, got, tc.want)
		}
	}
}
