package controllers

import (
	"sync"
	"time"
)

// maxBatchWait bounds, in BatchDelays, how long a steady stream of mapping
// changes may hold the write back.
const maxBatchWait = 10

// batch gathers a burst of mapping changes (a GitOps sync) into one write
// of aws-auth: the write is due once BatchDelay has passed without a
// change, and at the latest maxBatchWait BatchDelays after the first. A
// fixed delay after the first change would instead write once per delay
// for as long as the burst lasts, each write a replace of aws-auth.
type batch struct {
	mu          sync.Mutex
	first, last time.Time
}

func (b *batch) add(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.first.IsZero() {
		b.first = now
	}
	b.last = now
}

// wait says how much longer the write should wait for the burst to end;
// 0 when it is due.
func (b *batch) wait(now time.Time, quiet, most time.Duration) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.first.IsZero() {
		return 0
	}
	due := b.last.Add(quiet)
	if latest := b.first.Add(most); latest.Before(due) {
		due = latest
	}
	return max(due.Sub(now), 0)
}

// reset closes the batch: the reconcile about to run reads every change
// made so far.
func (b *batch) reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.first, b.last = time.Time{}, time.Time{}
}
