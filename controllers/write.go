package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/aws-auth-guardian/aws-auth-guardian/internal/managed"
)

// written is what the write step did, for the report.
type written struct {
	plan managed.Plan
	// observed is the aws-auth the plan was made on.
	observed managed.Observed
	// restored: a missing aws-auth was brought back from the record.
	restored bool
	// window is the time from releasing the old aws-auth to creating the
	// new one, for a replace: an upper bound of the moment without one.
	window time.Duration
	// err is the write's failure; backupErr the record's.
	err, backupErr error
}

// write does what plan says to aws-auth, and nothing else. Every write is
// fenced by the UID and resourceVersion it was decided on, so a second
// operator or a person writing at the same time makes it fail, not
// clobber. Once aws-auth holds the render, the backup records it.
func (r *AWSAuthReconciler) write(ctx context.Context, observed managed.Observed, plan managed.Plan) written {
	done := written{plan: plan, observed: observed}
	live := observed.Object
	switch plan.Action {
	case managed.ActionCreate:
		done.err = r.create(ctx, plan.Write)
	case managed.ActionUpdate:
		// plan.Write carries live's resourceVersion: an optimistic lock.
		if err := r.Client.Update(ctx, plan.Write); err != nil {
			done.err = fmt.Errorf("updating aws-auth: %w", err)
		}
	case managed.ActionReplace:
		uid, rv := live.UID, live.ResourceVersion
		if err := r.Client.Delete(ctx, live, client.Preconditions{UID: &uid, ResourceVersion: &rv}); err != nil {
			done.err = fmt.Errorf("deleting aws-auth to replace its immutable data: %w", err)
			break
		}
		done.window, done.err = r.finishReplace(ctx, live, plan.Write)
	case managed.ActionFinishReplace:
		done.window, done.err = r.finishReplace(ctx, live, plan.Write)
	}
	if done.err == nil && plan.Applies {
		done.backupErr = r.saveBackup(ctx, plan.Data)
	}
	return done
}

// finishReplace lets a deleted aws-auth go and creates the new one at
// once. Until the finalizer is removed the authenticator still serves the
// old data, so the only moment without mappings is between these two calls.
func (r *AWSAuthReconciler) finishReplace(ctx context.Context, old, replacement *corev1.ConfigMap) (time.Duration, error) {
	start := time.Now()
	if err := r.releaseFinalizers(ctx, old); err != nil {
		return 0, err
	}
	err := r.create(ctx, replacement)
	return time.Since(start), err
}

// releaseFinalizers lets exactly the object that was deleted go: the patch
// tests its UID and its finalizers as read, so it cannot touch a newer
// aws-auth. It removes every finalizer, not only ours: a foreign one would
// hold the old object, and with it every replace, forever (the admission
// policy keeps others from adding one, but not one added before it was
// installed).
func (r *AWSAuthReconciler) releaseFinalizers(ctx context.Context, old *corev1.ConfigMap) error {
	if len(old.Finalizers) == 0 {
		return nil
	}
	patch, err := json.Marshal([]map[string]any{
		{"op": "test", "path": "/metadata/uid", "value": old.UID},
		{"op": "test", "path": "/metadata/finalizers", "value": old.Finalizers},
		{"op": "remove", "path": "/metadata/finalizers"},
	})
	if err != nil {
		return err
	}
	if err := r.Client.Patch(ctx, old.DeepCopy(), client.RawPatch(types.JSONPatchType, patch)); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("releasing the deleted aws-auth: %w", err)
	}
	return nil
}

func (r *AWSAuthReconciler) create(ctx context.Context, cm *corev1.ConfigMap) error {
	if err := r.Client.Create(ctx, cm); err != nil {
		return fmt.Errorf("creating aws-auth: %w", err)
	}
	return nil
}

// lostRace tells a write that failed because aws-auth changed meanwhile
// (someone else wrote it; the event of that write brings us back) from a
// real failure worth a Warning, such as an admission policy refusing it.
func lostRace(err error) bool {
	return apierrors.IsConflict(err) || apierrors.IsNotFound(err) || apierrors.IsAlreadyExists(err)
}
