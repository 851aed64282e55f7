package controllers

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/managed"
)

// appliedEntries is what a render is measured against: the operator's
// record of what it last applied, not whatever aws-auth holds. Entries
// someone else added are drift, undone at once; they must neither hold a
// render back (forged entries plus filler would otherwise stay live under
// TooManyRemoved) nor take the place of applied entries when the render
// is too large. Without a record (adoption, a forged backup) it is the
// live aws-auth.
func (r *AWSAuthReconciler) appliedEntries(ctx context.Context, live *corev1.ConfigMap) ([]awsauth.Entry, error) {
	data, _, err := r.record(ctx)
	if err != nil || data == nil {
		return servedEntries(live), err
	}
	entries, _ := awsauth.Parse(data)
	return entries, nil
}

// checkWipe applies the refuse-to-wipe rules to writing data over the
// applied entries; held is a refusal already decided (an adoption that
// would drop entries). A person allows one refused render by annotating
// aws-auth with its hash.
func (r *AWSAuthReconciler) checkWipe(ctx context.Context, live *corev1.ConfigMap, applied, desired []awsauth.Entry, data map[string]string, held *awsauth.Wipe) *awsauth.Wipe {
	wipe := held
	if wipe == nil {
		wipe = awsauth.CheckWipe(applied, desired, r.MaxRemovedShare)
	}
	if wipe == nil {
		return nil
	}
	hash := awsauth.Hash(data)
	log := ctrl.LoggerFrom(ctx)
	if live != nil && live.Annotations[iamv1alpha1.AllowRenderAnnotation] == hash {
		log.Info("Writing a render a guard refused, as allowed by annotation", "guard", wipe.Reason, "sha256", hash)
		return nil
	}
	blockedTotal.WithLabelValues(wipe.Reason).Inc()
	log.Info("Kept aws-auth: the render would remove access", "guard", wipe.Reason, "sha256", hash)
	// An event note is limited to 1 KiB; the full reason is on the
	// mappings' status.
	r.Recorder.Eventf(awsAuthOrReference(live), nil, corev1.EventTypeWarning, iamv1alpha1.ReasonBlocked, "Apply",
		"To write this render anyway: kubectl annotate -n %s configmap %s --overwrite %s=%s. Kept aws-auth as it is: %.600s",
		managed.AWSAuthKey.Namespace, managed.AWSAuthKey.Name, iamv1alpha1.AllowRenderAnnotation, hash, wipe.Message)
	wipe.Message += " (to allow it, annotate aws-auth with " + iamv1alpha1.AllowRenderAnnotation + "=" + hash + ")"
	return wipe
}
