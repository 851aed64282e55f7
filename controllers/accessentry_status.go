package controllers

import (
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/accessentry"
)

// accessEntryVerdict is what the access entry target made of one mapping.
type accessEntryVerdict struct {
	status          metav1.ConditionStatus
	reason, message string
	// entry is status.accessEntry: what the target wrote or will write.
	entry *iamv1alpha1.AccessEntryStatus
	// applies is false when the mapping can have no access entry (not
	// representable, no such principal): then aws-auth alone decides Ready.
	applies bool
}

// withAccessEntry adds the AccessEntrySynced condition and
// status.accessEntry to status, the aws-auth status of m, from the last
// access entry outcome o, and holds Ready back while the target applies
// to m and does not hold it: Ready is True only when every target that
// applies holds the mapping.
func withAccessEntry(m *iamv1alpha1.IAMIdentityMapping, status *iamv1alpha1.IAMIdentityMappingStatus, o *accessEntryOutcome) {
	// With two targets, each says for itself whether it holds the
	// mapping; aws-auth's verdict is what Ready said before the access
	// entry's joins it.
	if ready := meta.FindStatusCondition(status.Conditions, iamv1alpha1.ConditionReady); ready != nil {
		meta.SetStatusCondition(&status.Conditions, metav1.Condition{
			Type: iamv1alpha1.ConditionAWSAuthSynced, Status: ready.Status, Reason: ready.Reason, Message: ready.Message, ObservedGeneration: m.Generation,
		})
	}
	if o != nil && !o.accepting {
		// The cluster takes no access entries (CONFIG_MAP): the target
		// does not apply, and says nothing.
		meta.RemoveStatusCondition(&status.Conditions, iamv1alpha1.ConditionAccessEntrySynced)
		status.AccessEntry = nil
		return
	}
	v := verdictOfAccessEntry(m, o)
	status.AccessEntry = v.entry
	meta.SetStatusCondition(&status.Conditions, metav1.Condition{
		Type: iamv1alpha1.ConditionAccessEntrySynced, Status: v.status, Reason: v.reason, Message: v.message, ObservedGeneration: m.Generation,
	})
	if o != nil && o.mode == modeAPI {
		apiModeReady(m, status, v)
		return
	}
	if !v.applies || v.status == metav1.ConditionTrue || !meta.IsStatusConditionTrue(status.Conditions, iamv1alpha1.ConditionReady) {
		// Ready already says why aws-auth does not hold the mapping.
		return
	}
	set := func(conditionType string, s metav1.ConditionStatus) {
		meta.SetStatusCondition(&status.Conditions, metav1.Condition{
			Type: conditionType, Status: s, Reason: v.reason, Message: v.message, ObservedGeneration: m.Generation,
		})
	}
	if v.reason == iamv1alpha1.ReasonProgressing {
		set(iamv1alpha1.ConditionReconciling, metav1.ConditionTrue)
		set(iamv1alpha1.ConditionReady, metav1.ConditionUnknown)
		return
	}
	// A conflict or a guard: nothing changes until a person acts.
	set(iamv1alpha1.ConditionReady, metav1.ConditionFalse)
	set(iamv1alpha1.ConditionStalled, metav1.ConditionTrue)
}

// modeAPI is the authentication mode in which EKS reads only access
// entries: aws-auth, still written, grants nothing.
const modeAPI = "API"

// apiModeReady sets Ready from the access entry verdict alone: in API mode
// EKS does not read aws-auth, so what aws-auth holds says nothing of
// whether the mapping grants access. A mapping without an access entry
// form grants nothing at all, and says so.
func apiModeReady(m *iamv1alpha1.IAMIdentityMapping, status *iamv1alpha1.IAMIdentityMappingStatus, v accessEntryVerdict) {
	set := func(conditionType string, s metav1.ConditionStatus, reason, message string) {
		meta.SetStatusCondition(&status.Conditions, metav1.Condition{
			Type: conditionType, Status: s, Reason: reason, Message: message, ObservedGeneration: m.Generation,
		})
	}
	meta.RemoveStatusCondition(&status.Conditions, iamv1alpha1.ConditionReconciling)
	meta.RemoveStatusCondition(&status.Conditions, iamv1alpha1.ConditionStalled)
	switch {
	case v.status == metav1.ConditionTrue:
		set(iamv1alpha1.ConditionReady, metav1.ConditionTrue, v.reason, v.message)
	case v.reason == iamv1alpha1.ReasonProgressing:
		set(iamv1alpha1.ConditionReconciling, metav1.ConditionTrue, v.reason, v.message)
		set(iamv1alpha1.ConditionReady, metav1.ConditionUnknown, v.reason, v.message)
	default:
		message := v.message
		if !v.applies {
			message = "The cluster's authentication mode is API: EKS does not read aws-auth, so this mapping, which has no access entry, grants nothing: " + v.message
		}
		set(iamv1alpha1.ConditionReady, metav1.ConditionFalse, v.reason, message)
		set(iamv1alpha1.ConditionStalled, metav1.ConditionTrue, v.reason, message)
	}
}

func verdictOfAccessEntry(m *iamv1alpha1.IAMIdentityMapping, o *accessEntryOutcome) accessEntryVerdict {
	progressing := accessEntryVerdict{status: metav1.ConditionUnknown, reason: iamv1alpha1.ReasonProgressing,
		message: "The change is not in the EKS access entries yet", entry: m.Status.AccessEntry, applies: true}
	if o == nil {
		return progressing
	}
	if l, ok := o.listed[m.Name]; !ok || l.uid != m.UID || l.generation != m.Generation {
		return progressing
	}
	d, ok := o.desired[m.Name]
	if !ok {
		return progressing
	}
	switch d.Kind {
	case accessentry.DesiredNotRepresentable:
		return accessEntryVerdict{status: metav1.ConditionFalse, reason: iamv1alpha1.ReasonNotRepresentable, message: errorMessage(d.Err)}
	case accessentry.DesiredPrincipalNotFound:
		return accessEntryVerdict{status: metav1.ConditionFalse, reason: iamv1alpha1.ReasonPrincipalNotFound, message: errorMessage(d.Err)}
	case accessentry.DesiredRefused:
		return accessEntryVerdict{status: metav1.ConditionFalse, reason: iamv1alpha1.ReasonRefusedByEKS, applies: true, entry: m.Status.AccessEntry,
			message: "EKS refused the access entry: " + errorMessage(d.Err) + " It is asked again when the mapping changes, or, for a limit, when the cluster has fewer entries."}
	case accessentry.DesiredPending:
		progressing.message = fmt.Sprintf("The role's ARN could not be read from IAM yet: %s", errorMessage(d.Err))
		return progressing
	}
	entry := d.Entry.Status()
	out := o.sync.Outcomes[m.Name]
	v := accessEntryVerdict{status: metav1.ConditionFalse, message: out.Message, entry: &entry, applies: true}
	switch out.State {
	case accessentry.StateSynced:
		v.status, v.reason, v.message = metav1.ConditionTrue, iamv1alpha1.ReasonApplied, "The access entry of "+entry.PrincipalARN+" is in EKS"
	case accessentry.StateConflict:
		v.reason = iamv1alpha1.ReasonConflict
	case accessentry.StateBlocked:
		v.reason = iamv1alpha1.ReasonBlocked
	default:
		v.status, v.reason = metav1.ConditionUnknown, iamv1alpha1.ReasonProgressing
		if v.message == "" {
			v.message = "EKS does not hold the access entry of " + entry.PrincipalARN + " yet"
		}
	}
	return v
}

func errorMessage(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// accessEntryGone says whether the access entry target is done with m, a
// mapping being deleted: it is off, the cluster takes no entries, or a pass
// that saw m being deleted had nothing left to do for it. Until then the
// finalizer stays, so that a guard can hold the deletion of an entry (the
// last with cluster admin, say) as it holds aws-auth's.
func (r *MappingStatusReconciler) accessEntryGone(m *iamv1alpha1.IAMIdentityMapping) bool {
	if r.accessEntries == nil {
		return true
	}
	o := r.accessEntries.outcome()
	switch {
	case o == nil:
		return false
	case !o.accepting:
		return true
	}
	if l, ok := o.listed[m.Name]; !ok || l.uid != m.UID || !l.deleting {
		return false
	}
	pending, _ := o.deletion(m.Name)
	return !pending
}

// accessEntryHeld is the status of m, being deleted, while a guard holds
// the deletion of its access entry; ok is false when none does.
func (r *MappingStatusReconciler) accessEntryHeld(m *iamv1alpha1.IAMIdentityMapping) (iamv1alpha1.IAMIdentityMappingStatus, bool) {
	if r.accessEntries == nil {
		return iamv1alpha1.IAMIdentityMappingStatus{}, false
	}
	o := r.accessEntries.outcome()
	if o == nil || !o.accepting {
		return iamv1alpha1.IAMIdentityMappingStatus{}, false
	}
	_, held := o.deletion(m.Name)
	if held == "" {
		return iamv1alpha1.IAMIdentityMappingStatus{}, false
	}
	status := *m.Status.DeepCopy()
	message := "The deletion is held, the access entry was left as it is: " + held
	if o.sync.RefusedHash != "" {
		message += " (to allow it: " + allowCommand(m.Name, o.sync.RefusedHash) + ")"
	}
	for _, c := range []struct {
		conditionType string
		status        metav1.ConditionStatus
	}{{iamv1alpha1.ConditionReady, metav1.ConditionFalse}, {iamv1alpha1.ConditionStalled, metav1.ConditionTrue}, {iamv1alpha1.ConditionAccessEntrySynced, metav1.ConditionFalse}} {
		meta.SetStatusCondition(&status.Conditions, metav1.Condition{
			Type: c.conditionType, Status: c.status, Reason: iamv1alpha1.ReasonBlocked, Message: message, ObservedGeneration: m.Generation,
		})
	}
	return status, true
}
