package backoff

import (
	"testing"
	"time"
)

func TestDelay(t *testing.T) {
	t.Parallel()
	p := Policy{Base: time.Second, Max: time.Minute, Factor: 2}
	half := func() float64 { return 0.5 } // no jitter movement
	tests := []struct {
		name string
		p    Policy
		n    int
		rnd  func() float64
		want time.Duration
	}{
		{"first retry is base", p, 1, nil, time.Second},
		{"zero is read as first", p, 0, nil, time.Second},
		{"doubles", p, 3, nil, 4 * time.Second},
		{"capped", p, 10, nil, time.Minute},
		{"huge n does not overflow", p, 100000, nil, time.Minute},
		{"jitter low end", Policy{Base: time.Second, Max: time.Hour, Factor: 2, Jitter: 0.5}, 1, func() float64 { return 0 }, 500 * time.Millisecond},
		{"jitter middle", Policy{Base: time.Second, Max: time.Hour, Factor: 2, Jitter: 0.5}, 1, half, time.Second},
		{"jitter never passes max", Policy{Base: time.Hour, Max: time.Hour, Factor: 2, Jitter: 0.5}, 1, func() float64 { return 0.999 }, time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.p.Delay(tt.n, tt.rnd); got != tt.want {
				t.Errorf("Delay(%d) = %v, want %v", tt.n, got, tt.want)
			}
		})
	}
}

func TestDelayJitterStaysInRange(t *testing.T) {
	t.Parallel()
	p := Policy{Base: time.Second, Max: time.Hour, Factor: 2, Jitter: 0.2}
	for i := 0; i < 10000; i++ {
		d := p.Delay(2, nil)
		if d < 1600*time.Millisecond || d > 2400*time.Millisecond {
			t.Fatalf("Delay(2) = %v, outside 2s ± 20%%", d)
		}
	}
}
