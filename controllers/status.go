package controllers

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/managed"
)

// MappingStatusReconciler writes each mapping's finalizer and status from
// the outcome the aws-auth reconciler last published. It has workers of
// its own, so that a deleted aws-auth never waits for thousands of status
// writes, and holds no state: every reconcile starts from the mapping in
// the cache and the last outcome.
type MappingStatusReconciler struct {
	Client   client.Client
	Recorder events.EventRecorder
	outcomes *outcomes
	// accessEntries is the access entry target, nil when it is off: then
	// the status is aws-auth's alone, as it always was.
	accessEntries *AccessEntryReconciler
}

// Reconcile brings one mapping's finalizer and status to the last outcome.
// The finalizer goes on every mapping, so that deleting one (or the CRD,
// which deletes them all) waits for aws-auth to be written without it, and
// a guard can hold a deletion that would lock people out; it comes off
// once aws-auth holds a render made without the mapping.
func (r *MappingStatusReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	m := &iamv1alpha1.IAMIdentityMapping{}
	if err := r.Client.Get(ctx, req.NamespacedName, m); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	o := r.outcomes.load()
	deleting := !m.DeletionTimestamp.IsZero()
	switch {
	case !deleting && !controllerutil.ContainsFinalizer(m, iamv1alpha1.ProtectionFinalizer):
		if err := r.patchFinalizers(ctx, m, controllerutil.AddFinalizer); err != nil {
			return retryConflict(err)
		}
	case deleting && o != nil && o.applied && o.current(m) && r.accessEntryGone(m):
		if err := r.patchFinalizers(ctx, m, controllerutil.RemoveFinalizer); err != nil {
			return retryConflict(err)
		}
		if meta.IsStatusConditionTrue(m.Status.Conditions, iamv1alpha1.ConditionReady) {
			r.Recorder.Eventf(m, nil, corev1.EventTypeNormal, "Removed", "Render",
				"The entry of %s left %s", m.Status.Identity, managed.AWSAuthKey)
		}
		return ctrl.Result{}, nil
	}
	if o == nil {
		// Nothing rendered yet; the first outcome queues every mapping.
		return ctrl.Result{}, nil
	}
	status, ok := statusOf(m, o)
	switch {
	case ok && r.accessEntries != nil && !deleting:
		withAccessEntry(m, &status, r.accessEntries.outcome())
	case !ok && deleting:
		// aws-auth lets it go; the access entry target may not.
		status, ok = r.accessEntryHeld(m)
	}
	if !ok || equality.Semantic.DeepEqual(m.Status, status) {
		return ctrl.Result{}, nil
	}
	before := meta.FindStatusCondition(m.Status.Conditions, iamv1alpha1.ConditionReady)
	patchBase := client.MergeFrom(m.DeepCopy())
	m.Status = status
	if err := r.Client.Status().Patch(ctx, m, patchBase); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	r.announce(m, before, meta.FindStatusCondition(status.Conditions, iamv1alpha1.ConditionReady))
	return ctrl.Result{}, nil
}

// announce emits the mapping's own events, sparse so that `kubectl
// describe` tells its story: a Normal one when its entry lands in aws-auth
// (at first, and after each change), a Warning one when it cannot be
// rendered or applied, once per reason and message.
func (r *MappingStatusReconciler) announce(m *iamv1alpha1.IAMIdentityMapping, before, ready *metav1.Condition) {
	switch {
	case ready.Status == metav1.ConditionTrue && (before == nil || before.Status != metav1.ConditionTrue || before.ObservedGeneration != ready.ObservedGeneration):
		r.Recorder.Eventf(m, nil, corev1.EventTypeNormal, ready.Reason, "Render", "%s as %s", ready.Message, m.Status.Identity)
	case ready.Status == metav1.ConditionFalse && (before == nil || before.Reason != ready.Reason || before.Message != ready.Message):
		r.Recorder.Eventf(m, nil, corev1.EventTypeWarning, ready.Reason, "Render", "%s", ready.Message)
	}
}

// conflictRetry is how soon a mapping whose finalizer patch met a newer
// version is tried again. The conflict is the cache behind a write of a
// moment ago (often this reconciler's own, from the previous reconcile of
// the mapping, which several sources queue at start): it catches up within
// milliseconds, and a finalizer change moves no generation, so no watch
// event would bring the mapping back by itself.
const conflictRetry = 200 * time.Millisecond

// retryConflict retries a conflict quietly, as the ordinary state of a
// cache, rather than as an error that controller-runtime logs as one and
// backs off from; any other error is returned.
func retryConflict(err error) (ctrl.Result, error) {
	if apierrors.IsConflict(err) {
		return ctrl.Result{RequeueAfter: conflictRetry}, nil
	}
	return ctrl.Result{}, err
}

func (r *MappingStatusReconciler) patchFinalizers(ctx context.Context, m *iamv1alpha1.IAMIdentityMapping, change func(client.Object, string) bool) error {
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

// statusOf is the status m should show under o; ok is false when o says
// nothing about it (a mapping being deleted that no guard holds: it is
// about to go).
func statusOf(m *iamv1alpha1.IAMIdentityMapping, o *outcome) (iamv1alpha1.IAMIdentityMappingStatus, bool) {
	switch current := o.current(m); {
	case !m.DeletionTimestamp.IsZero():
		// Being deleted: it says so only while a guard holds it.
		if !current || o.refusal == nil {
			return iamv1alpha1.IAMIdentityMappingStatus{}, false
		}
		var out awsauth.Outcome
		out.Entry, out.Err = managed.MappingInput(m).Entry()
		return desiredStatus(m, out, o), true
	case !current:
		return progressingStatus(m), true
	}
	return desiredStatus(m, o.resolution.Outcomes[m.Name], o), true
}

// progressingStatus says that m's spec is not in aws-auth yet: kstatus and
// `kubectl wait --for=condition=Ready` must not take the status of an
// older spec for this one's.
func progressingStatus(m *iamv1alpha1.IAMIdentityMapping) iamv1alpha1.IAMIdentityMappingStatus {
	status := *m.Status.DeepCopy()
	status.ObservedGeneration = m.Generation
	message := "The change is not in " + managed.AWSAuthKey.String() + " yet"
	for _, c := range []struct {
		conditionType string
		status        metav1.ConditionStatus
	}{{iamv1alpha1.ConditionReconciling, metav1.ConditionTrue}, {iamv1alpha1.ConditionReady, metav1.ConditionUnknown}} {
		meta.SetStatusCondition(&status.Conditions, metav1.Condition{
			Type: c.conditionType, Status: c.status, Reason: iamv1alpha1.ReasonProgressing, Message: message, ObservedGeneration: m.Generation,
		})
	}
	meta.RemoveStatusCondition(&status.Conditions, iamv1alpha1.ConditionStalled)
	return status
}

// verdict is the reason and message of m's Ready condition, given what
// became of it (out) and of the reconcile (o).
func verdict(m *iamv1alpha1.IAMIdentityMapping, out awsauth.Outcome, section iamv1alpha1.Section, o *outcome) (reason, message string) {
	switch {
	case out.Err != nil:
		return iamv1alpha1.ReasonInvalid, out.Err.Error()
	case out.ShadowedBy != "":
		return iamv1alpha1.ReasonConflict, fmt.Sprintf("IAMIdentityMapping %s is older and maps the same identity (%s); this mapping is not rendered until that one is deleted or changed", out.ShadowedBy, out.Entry.Identity)
	case !m.DeletionTimestamp.IsZero() && o.refusal != nil:
		return iamv1alpha1.ReasonBlocked, fmt.Sprintf("The deletion is held, aws-auth was left as it is: %s", o.refusal.Message)
	case o.serves(out.Entry):
		return iamv1alpha1.ReasonApplied, fmt.Sprintf("The entry is in %s %s", managed.AWSAuthKey, section)
	case out.TooLarge != nil:
		return iamv1alpha1.ReasonTooLarge, fmt.Sprintf("The entry is %d bytes and does not fit: the older or already applied mappings leave %d of the %d bytes a ConfigMap may hold, so it is left out of %s. Shorten its groups or username, or delete other mappings",
			out.TooLarge.EntryBytes, out.TooLarge.FreeBytes, awsauth.MaxDataBytes, managed.AWSAuthKey)
	case o.renderErr != nil:
		return iamv1alpha1.ReasonRenderFailed, fmt.Sprintf("aws-auth was left as it is: %v", o.renderErr)
	case o.refusal != nil:
		return iamv1alpha1.ReasonBlocked, fmt.Sprintf("aws-auth was left as it is: %s", o.refusal.Message)
	}
	return iamv1alpha1.ReasonApplied, fmt.Sprintf("The entry is in %s %s", managed.AWSAuthKey, section)
}

// desiredStatus is the status a mapping should show, given what became of
// it. It starts from the current conditions so that lastTransitionTime
// only moves when a condition really changes.
func desiredStatus(m *iamv1alpha1.IAMIdentityMapping, out awsauth.Outcome, o *outcome) iamv1alpha1.IAMIdentityMappingStatus {
	status := iamv1alpha1.IAMIdentityMappingStatus{
		ObservedGeneration: m.Generation,
		Conditions:         append([]metav1.Condition(nil), m.Status.Conditions...),
	}
	if out.Err == nil {
		status.Section = iamv1alpha1.Section(out.Entry.Section)
		status.Identity = out.Entry.Identity
		if out.Entry.Section != awsauth.MapAccounts {
			status.CanonicalARN = out.Entry.Identity
		}
	}
	reason, message := verdict(m, out, status.Section, o)
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
