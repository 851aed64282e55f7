package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
)

// What apply did to aws-auth; the event reason.
const (
	actionCreated   = "Created"   // it was missing
	actionRecreated = "Recreated" // it was being deleted
	actionReplaced  = "Replaced"  // new data while the data is immutable
	actionUpdated   = "Updated"   // updated in place (mutable data, or metadata restored)
)

// apply brings the live aws-auth to data. Every write is fenced by the
// UID and resourceVersion it was decided on, so a second operator or a
// person writing at the same time makes it fail, not clobber.
func (r *AWSAuthReconciler) apply(ctx context.Context, data map[string]string, entries int) error {
	live := &corev1.ConfigMap{}
	err := r.APIReader.Get(ctx, AWSAuthKey, live)
	switch {
	case apierrors.IsNotFound(err):
		return r.create(ctx, data, entries, actionCreated)
	case err != nil:
		return fmt.Errorf("reading aws-auth: %w", err)
	case len(data) == 0 && hasEntries(live):
		// The first refuse-to-wipe rule of DESIGN.md: an empty render never
		// replaces a live aws-auth that maps someone, deleted or not.
		ctrl.LoggerFrom(ctx).Info("Kept aws-auth: the render has no entries", "live", AWSAuthKey)
		r.Recorder.Eventf(live, nil, corev1.EventTypeWarning, "Blocked", "Apply",
			"Kept aws-auth as it is: no IAMIdentityMapping asks for an entry, and an empty aws-auth would lock everyone out")
		return nil
	case !live.DeletionTimestamp.IsZero():
		// Someone deleted it, or a replace of ours stopped halfway: the
		// finalizer still holds the old data in place; finish the job.
		return r.finishReplace(ctx, live, data, entries, actionRecreated)
	}

	desired := live.DeepCopy()
	SetManaged(desired, data, r.Mode)
	switch {
	case equality.Semantic.DeepEqual(live, desired):
		return nil
	case !ptr.Deref(live.Immutable, false) || (equality.Semantic.DeepEqual(live.Data, desired.Data) && len(live.BinaryData) == 0 && ptr.Deref(desired.Immutable, false)):
		// The data may change in place, or only the metadata differs.
		if err := r.Client.Update(ctx, desired); err != nil {
			return fmt.Errorf("updating aws-auth: %w", err)
		}
		r.recordApplied(ctx, desired, entries, actionUpdated)
		return nil
	}
	uid, rv := live.UID, live.ResourceVersion
	if err := r.Client.Delete(ctx, live, client.Preconditions{UID: &uid, ResourceVersion: &rv}); err != nil {
		return fmt.Errorf("deleting aws-auth to replace its immutable data: %w", err)
	}
	return r.finishReplace(ctx, live, data, entries, actionReplaced)
}

func hasEntries(cm *corev1.ConfigMap) bool {
	entries, errs := awsauth.Parse(cm.Data)
	return len(entries) > 0 || len(errs) > 0
}

// finishReplace lets a deleted aws-auth go and creates the new one at
// once. Until the finalizer is removed the authenticator still serves the
// old data, so the only moment without mappings is between these two calls.
func (r *AWSAuthReconciler) finishReplace(ctx context.Context, old *corev1.ConfigMap, data map[string]string, entries int, action string) error {
	if err := r.releaseFinalizer(ctx, old); err != nil {
		return err
	}
	return r.create(ctx, data, entries, action)
}

// releaseFinalizer removes our finalizer from exactly the object that was
// deleted: the patch tests its UID and the finalizer's position, so it
// cannot touch a newer aws-auth.
func (r *AWSAuthReconciler) releaseFinalizer(ctx context.Context, old *corev1.ConfigMap) error {
	i := slices.Index(old.Finalizers, iamv1alpha1.ProtectionFinalizer)
	if i < 0 {
		return nil
	}
	at := fmt.Sprintf("/metadata/finalizers/%d", i)
	patch, err := json.Marshal([]map[string]any{
		{"op": "test", "path": "/metadata/uid", "value": old.UID},
		{"op": "test", "path": at, "value": iamv1alpha1.ProtectionFinalizer},
		{"op": "remove", "path": at},
	})
	if err != nil {
		return err
	}
	if err := r.Client.Patch(ctx, old.DeepCopy(), client.RawPatch(types.JSONPatchType, patch)); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("releasing the deleted aws-auth: %w", err)
	}
	return nil
}

func (r *AWSAuthReconciler) create(ctx context.Context, data map[string]string, entries int, action string) error {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: AWSAuthKey.Namespace, Name: AWSAuthKey.Name}}
	SetManaged(cm, data, r.Mode)
	if err := r.Client.Create(ctx, cm); err != nil {
		return fmt.Errorf("creating aws-auth: %w", err)
	}
	r.recordApplied(ctx, cm, entries, action)
	return nil
}

// SetManaged puts on cm everything this operator owns: the data, the
// mode, the label, the hash annotation and the finalizer. Other labels,
// annotations and finalizers are left alone. There are no ownerReferences,
// ever: garbage collection of aws-auth is the outage this project prevents.
func SetManaged(cm *corev1.ConfigMap, data map[string]string, mode ConfigMapMode) {
	cm.Data = maps.Clone(data)
	cm.BinaryData = nil
	cm.Immutable = nil
	if mode == Immutable {
		cm.Immutable = ptr.To(true)
	}
	if cm.Labels == nil {
		cm.Labels = map[string]string{}
	}
	cm.Labels[iamv1alpha1.ManagedByLabel] = iamv1alpha1.ManagedByValue
	if cm.Annotations == nil {
		cm.Annotations = map[string]string{}
	}
	cm.Annotations[iamv1alpha1.DataHashAnnotation] = awsauth.Hash(data)
	controllerutil.AddFinalizer(cm, iamv1alpha1.ProtectionFinalizer)
}

func (r *AWSAuthReconciler) recordApplied(ctx context.Context, cm *corev1.ConfigMap, entries int, action string) {
	hash := cm.Annotations[iamv1alpha1.DataHashAnnotation]
	ctrl.LoggerFrom(ctx).Info("Applied aws-auth", "action", action, "entries", entries,
		"bytes", awsauth.DataSize(cm.Data), "sha256", hash, "mode", r.Mode)
	r.Recorder.Eventf(cm, nil, corev1.EventTypeNormal, action, "Apply",
		"%s aws-auth with %d entries (sha256 %.12s)", action, entries, hash)
}
