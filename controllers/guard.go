package controllers

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
)

// checkWipe applies the refuse-to-wipe rules to writing data; held is a
// refusal already decided (an adoption that would drop entries). The
// rules measure what the render removes from the operator's record (what
// it last applied), not from whatever aws-auth holds: entries someone else
// added are drift, undone at once, and must not hold the render back
// (forged entries plus filler would otherwise stay live under
// TooManyRemoved). Without a record (adoption, a forged backup) they
// measure against the live aws-auth. A person allows one refused render
// by annotating aws-auth with its hash.
func (r *AWSAuthReconciler) checkWipe(ctx context.Context, live *corev1.ConfigMap, desired []awsauth.Entry, data map[string]string, held *awsauth.Wipe) (*awsauth.Wipe, error) {
	wipe := held
	if wipe == nil {
		applied, _, err := r.record(ctx)
		if err != nil {
			return nil, err
		}
		baseline := servedEntries(live)
		if applied != nil {
			baseline, _ = awsauth.Parse(applied)
		}
		wipe = awsauth.CheckWipe(baseline, desired, r.MaxRemovedShare)
	}
	if wipe == nil {
		return nil, nil
	}
	hash := awsauth.Hash(data)
	log := ctrl.LoggerFrom(ctx)
	if live != nil && live.Annotations[iamv1alpha1.AllowRenderAnnotation] == hash {
		log.Info("Writing a render a guard refused, as allowed by annotation", "guard", wipe.Reason, "sha256", hash)
		return nil, nil
	}
	blockedTotal.WithLabelValues(wipe.Reason).Inc()
	log.Info("Kept aws-auth: the render would remove access", "guard", wipe.Reason, "sha256", hash)
	// An event note is limited to 1 KiB; the full reason is on the
	// mappings' status.
	r.Recorder.Eventf(awsAuthOrReference(live), nil, corev1.EventTypeWarning, iamv1alpha1.ReasonBlocked, "Apply",
		"To write this render anyway: kubectl annotate -n %s configmap %s --overwrite %s=%s. Kept aws-auth as it is: %.600s",
		AWSAuthKey.Namespace, AWSAuthKey.Name, iamv1alpha1.AllowRenderAnnotation, hash, wipe.Message)
	wipe.Message += " (to allow it, annotate aws-auth with " + iamv1alpha1.AllowRenderAnnotation + "=" + hash + ")"
	return wipe, nil
}
