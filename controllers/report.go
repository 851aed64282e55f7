package controllers

import (
	"cmp"
	"context"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/managed"
)

// What was done to aws-auth: the reason of its event and the action logged.
const (
	actionCreated   = "Created"   // it was missing
	actionRecreated = "Recreated" // it was being deleted
	actionReplaced  = "Replaced"  // new data while the data is immutable
	actionUpdated   = "Updated"   // updated in place (mutable data, or metadata restored)
	actionRestored  = "Restored"  // it was missing; the last applied data is back
)

// report emits every metric, log line and event of one reconcile, then
// publishes its outcome for the mappings' status. desired and done are
// nil when the reconcile stopped before them.
func (r *AWSAuthReconciler) report(ctx context.Context, observed observation, d *desired, done *written) {
	r.reportBackupRejection(ctx)
	if observed.restored != nil {
		r.reportWrite(ctx, *observed.restored)
	}
	if d != nil {
		r.reportAdoption(ctx, observed.Object, d.adoption)
	}
	if done != nil {
		r.reportWrite(ctx, *done)
	}
	// Known only when aws-auth was read, or a restore tells it was missing;
	// a read that failed says nothing.
	if done != nil || observed.restored != nil {
		present := 0.0
		if observed.Object != nil || (done != nil && done.err == nil && done.plan.Write != nil) {
			present = 1
		}
		awsAuthPresent.Set(present)
	}
	if d == nil || done == nil || done.err != nil || d.mappings == nil {
		// Nothing to say of the mappings: they were not read, or aws-auth
		// is not what the reconcile meant it to be (the retry will tell).
		return
	}
	served, servedHash := observed.Entries, observed.Hash
	applied := done.plan.Applies
	if applied || done.plan.Action == managed.ActionFinishReplace {
		served, servedHash = done.plan.Data.Entries, done.plan.Data.Hash
	}
	o := newOutcome(d, done.plan, served, servedHash, applied)
	if o.sameAs(r.outcomes.load()) {
		return
	}
	r.reportMappings(ctx, d.mappings, o)
	r.outcomes.publish(o)
}

// reportWrite tells what a write did to aws-auth, or why it did not.
func (r *AWSAuthReconciler) reportWrite(ctx context.Context, done written) {
	log := ctrl.LoggerFrom(ctx)
	plan := done.plan
	subject := awsAuthOrReference(cmp.Or(plan.Write, done.observed.Object))
	if done.err != nil {
		if !lostRace(done.err) {
			r.Recorder.Eventf(subject, nil, corev1.EventTypeWarning, "ApplyFailed", "Apply",
				"Writing aws-auth failed; retrying with backoff: %.600s", done.err.Error())
		}
		return
	}
	if refusal := plan.Refusal; refusal != nil {
		blockedTotal.WithLabelValues(refusal.Reason).Inc()
		if refusal.Reason == awsauth.RefusedCRDUnusable {
			log.Info("Keeping aws-auth as it is", "reason", refusal.Message)
			r.Recorder.Eventf(subject, nil, corev1.EventTypeWarning, iamv1alpha1.ReasonBlocked, "Apply",
				"Kept aws-auth as it is (or restored it from the backup): %s", refusal.Message)
		} else {
			log.Info("Kept aws-auth: the render would remove access", "guard", refusal.Reason, "sha256", plan.RefusedHash)
			// An event note is limited to 1 KiB; the full reason is on the
			// mappings' status.
			r.Recorder.Eventf(subject, nil, corev1.EventTypeWarning, iamv1alpha1.ReasonBlocked, "Apply",
				"To write this render anyway: kubectl annotate -n %s configmap %s --overwrite %s=%s. Kept aws-auth as it is: %.600s",
				managed.AWSAuthKey.Namespace, managed.AWSAuthKey.Name, iamv1alpha1.AllowRenderAnnotation, plan.RefusedHash, refusal.Message)
		}
	}
	if plan.Allowed != nil {
		log.Info("Writing a render a guard refused, as allowed by annotation", "guard", plan.Allowed.Reason, "sha256", plan.Data.Hash)
	}
	if plan.Action == managed.ActionKeep && done.observed.Object == nil {
		log.Error(nil, "aws-auth is missing and there is no backup to restore it from", "backup", r.backupKey())
		r.Recorder.Eventf(subject, nil, corev1.EventTypeWarning, "NoBackup", "Restore",
			"aws-auth is missing and there is no backup in %s to restore it from", r.backupKey())
	}
	action := actionOf(done)
	if action == "" {
		return
	}
	if plan.Drift != "" {
		driftRestorationsTotal.WithLabelValues(plan.Drift).Inc()
		log.Info("Restored aws-auth, changed by someone else", "drift", plan.Drift)
	}
	switch action {
	case actionCreated, actionRestored:
		recreationsTotal.WithLabelValues("missing").Inc()
	case actionRecreated:
		recreationsTotal.WithLabelValues("deleted").Inc()
	}
	if plan.Action == managed.ActionReplace || plan.Action == managed.ActionFinishReplace {
		replacesTotal.Inc()
		lastReplaceWindow.Set(done.window.Seconds())
		r.reportForeignFinalizers(ctx, done.observed.Object)
	}
	renderedBytes.Set(float64(plan.Data.Size))
	lastApply.SetToCurrentTime()
	log.Info("Applied aws-auth", "action", action, "entries", len(plan.Data.Entries),
		"bytes", plan.Data.Size, "sha256", plan.Data.Hash, "mode", r.Mode)
	r.Recorder.Eventf(plan.Write, nil, corev1.EventTypeNormal, action, "Apply",
		"%s aws-auth with %d entries (sha256 %.12s)", action, len(plan.Data.Entries), plan.Data.Hash)
}

// actionOf names what a successful write did, or "" when it wrote nothing.
func actionOf(done written) string {
	switch done.plan.Action {
	case managed.ActionCreate:
		if done.restored {
			return actionRestored
		}
		return actionCreated
	case managed.ActionUpdate:
		return actionUpdated
	case managed.ActionReplace:
		return actionReplaced
	case managed.ActionFinishReplace:
		return actionRecreated
	}
	return ""
}

// reportForeignFinalizers warns that finalizers of someone else were
// removed from a deleted aws-auth.
func (r *AWSAuthReconciler) reportForeignFinalizers(ctx context.Context, old *corev1.ConfigMap) {
	foreign := slices.DeleteFunc(slices.Clone(old.Finalizers), func(f string) bool { return f == iamv1alpha1.ProtectionFinalizer })
	if len(foreign) == 0 {
		return
	}
	ctrl.LoggerFrom(ctx).Info("Removed finalizers of someone else from the deleted aws-auth", "finalizers", foreign)
	r.Recorder.Eventf(old, nil, corev1.EventTypeWarning, "ForeignFinalizersRemoved", "Replace",
		"Removed finalizers %.400s from the deleted aws-auth: they would have held it, and kept the new aws-auth from being created", strings.Join(foreign, ", "))
}

// reportAdoption tells of the mappings created from an existing aws-auth.
func (r *AWSAuthReconciler) reportAdoption(ctx context.Context, live *corev1.ConfigMap, a adoption) {
	if a.created == 0 {
		return
	}
	log := ctrl.LoggerFrom(ctx)
	log.Info("Adopted the existing aws-auth", "mappings", a.created, "shadowed", len(a.found.Shadowed), "unrepresentable", len(a.found.Unrepresentable))
	r.Recorder.Eventf(live, nil, corev1.EventTypeNormal, "Adopted", "Adopt",
		"Created %d IAMIdentityMappings from the entries of aws-auth; %d duplicate entries the authenticator never served were left out", a.created, len(a.found.Shadowed))
	for _, s := range a.found.Shadowed {
		log.Info("Left out an entry the authenticator never serves", "entry", s)
	}
}

// reportBackupRejection tells, once per version, of a backup someone else wrote.
func (r *AWSAuthReconciler) reportBackupRejection(ctx context.Context) {
	rejected := r.unreported
	if rejected == nil {
		return
	}
	r.unreported = nil
	backupRejectedTotal.Inc()
	ctrl.LoggerFrom(ctx).Error(nil, "The backup of aws-auth was changed by someone else; not restoring from it", "backup", r.backupKey(), "sha256", rejected.hash, "annotated", rejected.annotated)
	r.Recorder.Eventf(rejected.backup, nil, corev1.EventTypeWarning, "BackupRejected", "Restore",
		"The data of %s does not match its %s annotation (%.12s, annotated %.12q): someone else wrote it, so aws-auth is not restored from it; the render of the mappings is used instead and the backup is rewritten",
		r.backupKey(), iamv1alpha1.DataHashAnnotation, rejected.hash, rejected.annotated)
}

// systemMasters is the group that bypasses RBAC: a mapping into it makes an
// IAM identity cluster-admin.
const systemMasters = "system:masters"

// reportMappings counts the mappings by section and readiness, and logs
// the ones that make an IAM identity cluster-admin whenever that list
// changes. The gauge is filled in full before it is set.
func (r *AWSAuthReconciler) reportMappings(ctx context.Context, mappings []iamv1alpha1.IAMIdentityMapping, o *outcome) {
	type series struct{ section, ready string }
	counts := map[series]float64{}
	var masters []string
	for i := range mappings {
		m := &mappings[i]
		status, ok := statusOf(m, o)
		if !ok {
			continue
		}
		if r.AccessEntries != nil && m.DeletionTimestamp.IsZero() {
			// Ready as the mapping's status says it: in API mode, from
			// its access entry alone.
			withAccessEntry(m, &status, r.AccessEntries.outcome())
		}
		ready := meta.FindStatusCondition(status.Conditions, iamv1alpha1.ConditionReady)
		counts[series{cmp.Or(string(status.Section), "none"), string(ready.Status)}]++
		if ready.Status == metav1.ConditionTrue && slices.Contains(o.resolution.Outcomes[m.Name].Entry.Groups, systemMasters) {
			masters = append(masters, m.Name)
		}
	}
	mappingsGauge.Reset()
	for s, n := range counts {
		mappingsGauge.WithLabelValues(s.section, s.ready).Set(n)
	}
	systemMastersMappings.Set(float64(len(masters)))
	slices.Sort(masters) // the cache lists in no set order
	if list := strings.Join(masters, ","); list != r.systemMasters {
		r.systemMasters = list
		ctrl.LoggerFrom(ctx).Info("IAMIdentityMappings grant system:masters, making their IAM identities cluster-admin", "count", len(masters), "mappings", masters)
	}
}

// awsAuthOrReference is what events are about: the live aws-auth, or a
// reference to it when it does not exist.
func awsAuthOrReference(live *corev1.ConfigMap) *corev1.ConfigMap {
	if live != nil {
		return live
	}
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: managed.AWSAuthKey.Namespace, Name: managed.AWSAuthKey.Name}}
}
