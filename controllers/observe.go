package controllers

import (
	"context"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/aws-auth-guardian/aws-auth-guardian/internal/managed"
)

// observation is what the observe step saw.
type observation struct {
	managed.Observed
	// seen counts the events on aws-auth up to the read.
	seen uint64
	// restored is the write that brought a missing aws-auth back, if any.
	restored *written
}

// observe reads aws-auth from the API server. A missing one is created at
// once with the record of what was last applied, before the mappings are
// even read; the render follows as over any live aws-auth. When the last
// event on aws-auth said it was deleted, the read is skipped: the create is
// the heal, and should aws-auth be back already, the create is refused as
// AlreadyExists and aws-auth is read after all.
func (r *AWSAuthReconciler) observe(ctx context.Context) (observation, error) {
	seen, deleted := r.events.last()
	obs := observation{seen: seen}
	if !deleted {
		live, err := r.getAWSAuth(ctx)
		if err != nil || live != nil {
			obs.Observed = managed.Observe(live)
			return obs, err
		}
	}
	record, _, err := r.record(ctx)
	if err != nil || record == nil {
		// Nothing to restore it from (a first start, or a forged backup):
		// the render creates it.
		return obs, err
	}
	plan := managed.PlanWrite(managed.Observed{}, record, r.Mode, managed.Guards{})
	done := r.write(ctx, managed.Observed{}, plan)
	done.restored = true
	switch {
	case done.err == nil:
		obs.restored = &done
		obs.Observed = managed.Observed{Object: plan.Write, Entries: record.Entries, Hash: record.Hash}
		return obs, done.backupErr
	case deleted && apierrors.IsAlreadyExists(done.err):
		// The deletion was old news.
		live, err := r.getAWSAuth(ctx)
		obs.Observed = managed.Observe(live)
		return obs, err
	}
	obs.restored = &done
	return obs, done.err
}

// reobserve observes again if aws-auth changed since obs was read.
func (r *AWSAuthReconciler) reobserve(ctx context.Context, obs observation) (observation, error) {
	if seen, _ := r.events.last(); seen == obs.seen {
		return obs, nil
	}
	again, err := r.observe(ctx)
	if again.restored == nil {
		// Keep the report of a restore done before.
		again.restored = obs.restored
	}
	return again, err
}

// getAWSAuth reads aws-auth from the API server, or nil when there is none.
func (r *AWSAuthReconciler) getAWSAuth(ctx context.Context) (*corev1.ConfigMap, error) {
	live := &corev1.ConfigMap{}
	err := r.APIReader.Get(ctx, managed.AWSAuthKey, live)
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("reading aws-auth: %w", err)
	}
	return live, nil
}

// awsAuthEvents is what the watch of aws-auth has seen: how many events,
// and whether the last one said aws-auth is gone.
type awsAuthEvents struct {
	mu      sync.Mutex
	seen    uint64
	deleted bool
}

func (e *awsAuthEvents) record(deleted bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.seen++
	e.deleted = deleted
}

func (e *awsAuthEvents) last() (seen uint64, deleted bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.seen, e.deleted
}
