package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/managed"
)

// What was done to aws-auth; the event reason.
const (
	actionCreated   = "Created"   // it was missing
	actionRecreated = "Recreated" // it was being deleted
	actionReplaced  = "Replaced"  // new data while the data is immutable
	actionUpdated   = "Updated"   // updated in place (mutable data, or metadata restored)
	actionRestored  = "Restored"  // it was missing; the last applied data is back
)

// apply brings aws-auth to data; live is what the API server holds (nil
// when there is none). Every write is fenced by the UID and resourceVersion
// it was decided on, so a second operator or a person writing at the same
// time makes it fail, not clobber.
func (r *AWSAuthReconciler) apply(ctx context.Context, live *corev1.ConfigMap, data map[string]string) error {
	switch {
	case live == nil:
		_, err := r.create(ctx, nil, data, actionCreated)
		return err
	case !live.DeletionTimestamp.IsZero():
		// Someone deleted it, or a replace of ours stopped halfway: the
		// finalizer still holds the old data in place; finish the job.
		return r.finishReplace(ctx, live, data, actionRecreated)
	}

	desired := live.DeepCopy()
	managed.Set(desired, awsauth.Rendered{Data: data, Hash: awsauth.Hash(data)}, r.Mode)
	if equality.Semantic.DeepEqual(live, desired) {
		return nil
	}
	if drift := driftCause(live, data); drift != "" {
		driftRestorationsTotal.WithLabelValues(drift).Inc()
		ctrl.LoggerFrom(ctx).Info("Restoring aws-auth, changed by someone else", "drift", drift)
	}
	if !ptr.Deref(live.Immutable, false) || (equality.Semantic.DeepEqual(live.Data, desired.Data) && len(live.BinaryData) == 0 && ptr.Deref(desired.Immutable, false)) {
		// The data may change in place, or only the metadata differs.
		if err := r.Client.Update(ctx, desired); err != nil {
			return fmt.Errorf("updating aws-auth: %w", err)
		}
		r.recordApplied(ctx, desired, actionUpdated)
		return nil
	}
	uid, rv := live.UID, live.ResourceVersion
	if err := r.Client.Delete(ctx, live, client.Preconditions{UID: &uid, ResourceVersion: &rv}); err != nil {
		return fmt.Errorf("deleting aws-auth to replace its immutable data: %w", err)
	}
	return r.finishReplace(ctx, live, data, actionReplaced)
}

// driftCause says what someone else changed on a live aws-auth that differs
// from the render, or "" when the difference comes from the mappings.
func driftCause(live *corev1.ConfigMap, data map[string]string) string {
	liveHash := awsauth.Hash(live.Data)
	sameData := liveHash == awsauth.Hash(data) && len(live.BinaryData) == 0
	// Any of our marks left says we wrote it once.
	ours := managed.IsManaged(live) || live.Annotations[iamv1alpha1.DataHashAnnotation] != ""
	switch {
	case !ours && sameData:
		return "" // taking over an adopted aws-auth
	case !ours:
		return "unmanaged"
	case sameData:
		return "metadata"
	case liveHash != live.Annotations[iamv1alpha1.DataHashAnnotation] || len(live.BinaryData) > 0:
		return "data"
	}
	return ""
}

// keep leaves aws-auth as it is when nothing may be rendered over it, and
// only makes sure it goes on existing: a deleted aws-auth comes back with
// the data it was serving. (A missing one was restored before anything
// else, if there was anything to restore it from.)
func (r *AWSAuthReconciler) keep(ctx context.Context, live *corev1.ConfigMap) error {
	switch {
	case live == nil:
		r.reportNoBackup(ctx)
		return nil
	case !live.DeletionTimestamp.IsZero():
		if !managed.IsManaged(live) {
			// Not ours to hold: recreating it would need our finalizer,
			// which it never had.
			return nil
		}
		return r.finishReplace(ctx, live, live.Data, actionRecreated)
	}
	return nil
}

// finishReplace lets a deleted aws-auth go and creates the new one at
// once. Until the finalizer is removed the authenticator still serves the
// old data, so the only moment without mappings is between these two calls.
func (r *AWSAuthReconciler) finishReplace(ctx context.Context, old *corev1.ConfigMap, data map[string]string, action string) error {
	start := time.Now()
	if err := r.releaseFinalizer(ctx, old); err != nil {
		return err
	}
	if _, err := r.create(ctx, old, data, action); err != nil {
		return err
	}
	replacesTotal.Inc()
	lastReplaceWindow.Set(time.Since(start).Seconds())
	return nil
}

// releaseFinalizer lets exactly the object that was deleted go: the patch
// tests its UID and its finalizers as read, so it cannot touch a newer
// aws-auth. It removes every finalizer, not only ours: a foreign one
// would hold the old object, and with it every replace, forever (the
// admission policy keeps others from adding one, but not one added
// before it was installed).
func (r *AWSAuthReconciler) releaseFinalizer(ctx context.Context, old *corev1.ConfigMap) error {
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
	if foreign := slices.DeleteFunc(slices.Clone(old.Finalizers), func(f string) bool { return f == iamv1alpha1.ProtectionFinalizer }); len(foreign) > 0 {
		ctrl.LoggerFrom(ctx).Info("Removed finalizers of someone else from the deleted aws-auth", "finalizers", foreign)
		r.Recorder.Eventf(old, nil, corev1.EventTypeWarning, "ForeignFinalizersRemoved", "Replace",
			"Removed finalizers %.400s from the deleted aws-auth: they would have held it, and kept the new aws-auth from being created", strings.Join(foreign, ", "))
	}
	return nil
}

// create writes a new aws-auth with data and returns it; the labels and
// annotations that others put on the previous object, if any, carry over.
func (r *AWSAuthReconciler) create(ctx context.Context, previous *corev1.ConfigMap, data map[string]string, action string) (*corev1.ConfigMap, error) {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: managed.AWSAuthKey.Namespace, Name: managed.AWSAuthKey.Name}}
	if previous != nil {
		cm.Labels = maps.Clone(previous.Labels)
		cm.Annotations = maps.Clone(previous.Annotations)
	}
	managed.Set(cm, awsauth.Rendered{Data: data, Hash: awsauth.Hash(data)}, r.Mode)
	if err := r.Client.Create(ctx, cm); err != nil {
		return nil, fmt.Errorf("creating aws-auth: %w", err)
	}
	r.recordApplied(ctx, cm, action)
	return cm, nil
}

func (r *AWSAuthReconciler) recordApplied(ctx context.Context, cm *corev1.ConfigMap, action string) {
	switch action {
	case actionCreated, actionRestored:
		recreationsTotal.WithLabelValues("missing").Inc()
	case actionRecreated:
		recreationsTotal.WithLabelValues("deleted").Inc()
	}
	awsAuthPresent.Set(1)
	renderedBytes.Set(float64(awsauth.DataSize(cm.Data)))
	lastApply.SetToCurrentTime()
	hash := cm.Annotations[iamv1alpha1.DataHashAnnotation]
	entries, _ := awsauth.Parse(cm.Data)
	ctrl.LoggerFrom(ctx).Info("Applied aws-auth", "action", action, "entries", len(entries),
		"bytes", awsauth.DataSize(cm.Data), "sha256", hash, "mode", r.Mode)
	r.Recorder.Eventf(cm, nil, corev1.EventTypeNormal, action, "Apply",
		"%s aws-auth with %d entries (sha256 %.12s)", action, len(entries), hash)
}
