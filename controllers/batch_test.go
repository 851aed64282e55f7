package controllers

import (
	"testing"
	"time"
)

// A burst is written once it is quiet for the delay, or at the cap; a
// single change waits the delay, as before.
func TestBatchWait(t *testing.T) {
	t.Parallel()
	const delay = 200 * time.Millisecond
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return start.Add(time.Duration(ms) * time.Millisecond) }
	tests := []struct {
		name    string
		changes []int // ms after start
		now     int
		want    time.Duration
	}{
		{"nothing changed: due", nil, 0, 0},
		{"one change: waits the delay", []int{0}, 50, 150 * time.Millisecond},
		{"quiet for the delay: due", []int{0}, 200, 0},
		{"a change meanwhile extends the wait", []int{0, 150}, 200, 150 * time.Millisecond},
		{"a steady stream is written at the cap", []int{0, 150, 300, 450, 600, 750, 900, 1050, 1200, 1350, 1500, 1650, 1800, 1950}, 1990, 10 * time.Millisecond},
		{"past the cap: due", []int{0, 1900, 2100}, 2100, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var b batch
			for _, c := range tc.changes {
				b.add(at(c))
			}
			if got := b.wait(at(tc.now), delay, maxBatchWait*delay); got != tc.want {
				t.Errorf("wait = %v, want %v", got, tc.want)
			}
			b.reset()
			if got := b.wait(at(tc.now), delay, maxBatchWait*delay); got != 0 {
				t.Errorf("after reset, wait = %v, want 0", got)
			}
		})
	}
}
