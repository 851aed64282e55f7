package controllers

import (
	"context"
	"errors"
	"fmt"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
)

// protectMappings puts the finalizer on every mapping, so that deleting one
// (or the CRD, which deletes them all) waits for aws-auth to be rendered
// without it, and the guards can hold a deletion that would lock people out.
func (r *AWSAuthReconciler) protectMappings(ctx context.Context, mappings []iamv1alpha1.IAMIdentityMapping) error {
	var errs []error
	for i := range mappings {
		m := &mappings[i]
		if !m.DeletionTimestamp.IsZero() || controllerutil.ContainsFinalizer(m, iamv1alpha1.ProtectionFinalizer) {
			continue
		}
		errs = append(errs, r.patchFinalizers(ctx, m, controllerutil.AddFinalizer))
	}
	return errors.Join(errs...)
}

// releaseMappings lets deleted mappings go once aws-auth has been written
// without them.
func (r *AWSAuthReconciler) releaseMappings(ctx context.Context, mappings []iamv1alpha1.IAMIdentityMapping) error {
	var errs []error
	for i := range mappings {
		m := &mappings[i]
		if m.DeletionTimestamp.IsZero() || !controllerutil.ContainsFinalizer(m, iamv1alpha1.ProtectionFinalizer) {
			continue
		}
		errs = append(errs, r.patchFinalizers(ctx, m, controllerutil.RemoveFinalizer))
	}
	return errors.Join(errs...)
}

func (r *AWSAuthReconciler) patchFinalizers(ctx context.Context, m *iamv1alpha1.IAMIdentityMapping, change func(client.Object, string) bool) error {
	base := m.DeepCopy()
	change(m, iamv1alpha1.ProtectionFinalizer)
	// The optimistic lock keeps a merge patch of the list from dropping a
	// finalizer someone else added meanwhile.
	err := r.Client.Patch(ctx, m, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{}))
	if client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("updating the finalizers of IAMIdentityMapping %s: %w", m.Name, err)
	}
	return nil
}
