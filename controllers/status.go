package controllers

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/managed"
)

// reportStatus writes each mapping's status, only where it changed. It is
// called once aws-auth holds what it will hold, so Ready=True always means
// "in the live aws-auth".
func (r *AWSAuthReconciler) reportStatus(ctx context.Context, mappings []iamv1alpha1.IAMIdentityMapping, resolution awsauth.Resolution, result applyResult) error {
	var errs []error
	var masters []string
	mappingsGauge.Reset()
	for i := range mappings {
		if r.awsAuthChanged.Load() {
			// aws-auth changed meanwhile (deleted, say): its event has
			// queued the next reconcile, which heals it first and then
			// writes the statuses left.
			return errors.Join(errs...)
		}
		m := &mappings[i]
		outcome, rendered := resolution.Outcomes[m.Name]
		if !rendered {
			// Being deleted: it says so only while a guard holds it.
			if result.wipe == nil {
				continue
			}
			outcome.Entry, outcome.Err = managed.MappingInput(m).Entry()
		}
		status := desiredStatus(m, outcome, result)
		ready := meta.FindStatusCondition(status.Conditions, iamv1alpha1.ConditionReady)
		mappingsGauge.WithLabelValues(cmp.Or(string(status.Section), "none"), string(ready.Status)).Inc()
		if ready.Status == metav1.ConditionTrue && slices.Contains(outcome.Entry.Groups, systemMasters) {
			masters = append(masters, m.Name)
		}
		if equality.Semantic.DeepEqual(m.Status, status) {
			continue
		}
		before := meta.FindStatusCondition(m.Status.Conditions, iamv1alpha1.ConditionReady)
		patchBase := client.MergeFrom(m.DeepCopy())
		m.Status = status
		if err := r.Client.Status().Patch(ctx, m, patchBase); client.IgnoreNotFound(err) != nil {
			errs = append(errs, fmt.Errorf("updating status of IAMIdentityMapping %s: %w", m.Name, err))
			continue
		}
		if ready.Status != metav1.ConditionTrue && (before == nil || before.Reason != ready.Reason || before.Message != ready.Message) {
			r.Recorder.Eventf(m, nil, corev1.EventTypeWarning, ready.Reason, "Render", "%s", ready.Message)
		}
	}
	r.reportSystemMasters(ctx, masters)
	return errors.Join(errs...)
}

// systemMasters is the group that bypasses RBAC: a mapping into it makes an
// IAM identity cluster-admin.
const systemMasters = "system:masters"

// reportSystemMasters logs the mappings that make an IAM identity
// cluster-admin whenever that list changes, and counts them.
func (r *AWSAuthReconciler) reportSystemMasters(ctx context.Context, names []string) {
	systemMastersMappings.Set(float64(len(names)))
	slices.Sort(names) // the cache lists in no set order
	list := strings.Join(names, ",")
	if list == r.systemMasters {
		return
	}
	r.systemMasters = list
	ctrl.LoggerFrom(ctx).Info("IAMIdentityMappings grant system:masters, making their IAM identities cluster-admin", "count", len(names), "mappings", names)
}

// desiredStatus is the status a mapping should show, given what became of
// it. It starts from the current conditions so that lastTransitionTime
// only moves when a condition really changes.
func desiredStatus(m *iamv1alpha1.IAMIdentityMapping, outcome awsauth.Outcome, result applyResult) iamv1alpha1.IAMIdentityMappingStatus {
	status := iamv1alpha1.IAMIdentityMappingStatus{
		ObservedGeneration: m.Generation,
		Conditions:         append([]metav1.Condition(nil), m.Status.Conditions...),
	}
	if outcome.Err == nil {
		status.Section = iamv1alpha1.Section(outcome.Entry.Section)
		if outcome.Entry.Section != awsauth.MapAccounts {
			status.CanonicalARN = outcome.Entry.Identity
		}
	}

	reason, message := iamv1alpha1.ReasonApplied, fmt.Sprintf("The entry is in %s %s", managed.AWSAuthKey, status.Section)
	switch {
	case outcome.Err != nil:
		reason, message = iamv1alpha1.ReasonInvalid, outcome.Err.Error()
	case outcome.ShadowedBy != "":
		reason, message = iamv1alpha1.ReasonConflict, fmt.Sprintf("IAMIdentityMapping %s is older and maps the same identity (%s); this mapping is not rendered until that one is deleted or changed", outcome.ShadowedBy, outcome.Entry.Identity)
	case !m.DeletionTimestamp.IsZero() && result.wipe != nil:
		reason, message = iamv1alpha1.ReasonBlocked, fmt.Sprintf("The deletion is held, aws-auth was left as it is: %s", result.wipe.Message)
	case slices.ContainsFunc(result.served, outcome.Entry.Equal):
	case outcome.TooLarge != nil:
		reason, message = iamv1alpha1.ReasonTooLarge, fmt.Sprintf("The entry is %d bytes and does not fit: the older or already applied mappings leave %d of the %d bytes a ConfigMap may hold, so it is left out of %s. Shorten its groups or username, or delete other mappings",
			outcome.TooLarge.EntryBytes, outcome.TooLarge.FreeBytes, awsauth.MaxDataBytes, managed.AWSAuthKey)
	case result.renderErr != nil:
		reason, message = iamv1alpha1.ReasonRenderFailed, fmt.Sprintf("aws-auth was left as it is: %v", result.renderErr)
	case result.wipe != nil:
		reason, message = iamv1alpha1.ReasonBlocked, fmt.Sprintf("aws-auth was left as it is: %s", result.wipe.Message)
	}

	set := func(conditionType string, s metav1.ConditionStatus) {
		meta.SetStatusCondition(&status.Conditions, metav1.Condition{
			Type: conditionType, Status: s, Reason: reason, Message: message, ObservedGeneration: m.Generation,
		})
	}
	meta.RemoveStatusCondition(&status.Conditions, iamv1alpha1.ConditionReconciling)
	if reason == iamv1alpha1.ReasonApplied {
		set(iamv1alpha1.ConditionReady, metav1.ConditionTrue)
		meta.RemoveStatusCondition(&status.Conditions, iamv1alpha1.ConditionStalled)
	} else {
		// None of these can succeed until a spec changes: stalled, not retried.
		set(iamv1alpha1.ConditionReady, metav1.ConditionFalse)
		set(iamv1alpha1.ConditionStalled, metav1.ConditionTrue)
	}
	return status
}
