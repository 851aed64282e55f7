package controllers

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/accessentry"
)

// What a pass did to a mapping's access entry: the reason of its event.
const (
	entryCreated  = "Created"  // a new entry
	entryAdopted  = "Adopted"  // an entry that was there, tagged as ours
	entryRestored = "Restored" // the entry of a synced mapping, changed or deleted out of band
	entryUpdated  = "Updated"  // the entry follows a change of the mapping
	entryDeleted  = "Deleted"  // the mapping is gone or has no entry any more
	entryReleased = "Released" // as Deleted, for an adopted entry: its tags removed, the entry left to whoever made it
)

// The causes of aws_auth_guardian_access_entry_drift_restorations_total.
const (
	driftMissing = "missing" // the entry was deleted out of band
	driftChanged = "changed" // its groups, username, type or policies were
)

// accessEntryPass is what one pass of the access entry reconciler did, for
// report.
type accessEntryPass struct {
	observed []accessentry.Observed
	desired  []accessentry.Desired
	listed   map[string]listedMapping
	plan     accessentry.Sync
	// done counts the steps of plan.Steps that ran.
	done int
}

// reportState is what report remembers between passes so that its events
// are sparse: one per change, never one per resync.
type reportState struct {
	// synced are the translations of the mappings whose entry was the
	// translation at the last pass: steps for one of them, while its
	// translation is the same, undo a change made out of band.
	synced map[string]accessentry.Entry
	// warned is, by mapping, the refusal it was last warned of.
	warned map[string]string
}

// report emits every metric, log line and event of one pass, as the
// aws-auth reconciler's report does for aws-auth.
func (r *AccessEntryReconciler) report(ctx context.Context, p accessEntryPass) {
	log := ctrl.LoggerFrom(ctx)
	s := &r.reported
	if s.synced == nil {
		s.synced, s.warned = map[string]accessentry.Entry{}, map[string]string{}
	}
	desired := make(map[string]accessentry.Desired, len(p.desired))
	for _, d := range p.desired {
		desired[d.Name] = d
	}

	// One event per mapping and entry, naming the steps that ran on it.
	type key struct{ mapping, principal string }
	ran := map[key][]accessentry.Step{}
	for _, st := range p.plan.Steps[:p.done] {
		k := key{st.Mapping, accessentry.PrincipalKey(st.PrincipalARN)}
		ran[k] = append(ran[k], st)
	}
	drift := map[string]string{}
	for _, k := range slices.SortedFunc(maps.Keys(ran), func(a, b key) int {
		return cmp.Or(strings.Compare(a.mapping, b.mapping), strings.Compare(a.principal, b.principal))
	}) {
		steps := ran[k]
		has := func(kinds ...accessentry.StepKind) bool {
			return slices.ContainsFunc(steps, func(st accessentry.Step) bool { return slices.Contains(kinds, st.Kind) })
		}
		action := entryUpdated
		switch {
		case has(accessentry.StepCreate, accessentry.StepRecreate):
			action = entryCreated
		case has(accessentry.StepTag):
			action = entryAdopted
		case has(accessentry.StepDelete):
			action = entryDeleted
		case has(accessentry.StepRelease):
			action = entryReleased
		}
		// Steps for a mapping whose entry was its translation, which is
		// the same still, undo what someone else did to the entry.
		if prev, ok := s.synced[k.mapping]; ok && action != entryDeleted && action != entryReleased && accessentry.Equal(prev, desired[k.mapping].Entry) {
			drift[k.mapping] = driftChanged
			if has(accessentry.StepCreate) {
				drift[k.mapping] = driftMissing
			}
			action = entryRestored
		}
		log.Info("Access entry "+strings.ToLower(action), "mapping", k.mapping, "principalARN", steps[0].PrincipalARN, "steps", len(steps))
		if m, ok := mappingRef(k.mapping, p.listed); ok {
			r.Recorder.Eventf(m, nil, corev1.EventTypeNormal, action, "AccessEntry", "%s the access entry of %s (%s)", action, steps[0].PrincipalARN, stepList(steps))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(drift)) {
		accessEntryDriftRestorationsTotal.WithLabelValues(drift[name]).Inc()
		log.Info("Restored an access entry changed by someone else", "mapping", name, "drift", drift[name])
	}

	// Warnings: once per mapping and refusal, while it holds.
	warned := map[string]string{}
	for _, h := range p.plan.Held {
		name := h.Step.Mapping
		if _, ok := warned[name]; ok {
			continue
		}
		warned[name] = h.Reason + "|" + p.plan.RefusedHash
		if s.warned[name] == warned[name] {
			continue
		}
		m, ok := mappingRef(name, p.listed)
		if !ok {
			continue
		}
		var held []accessentry.Step
		for _, other := range p.plan.Held {
			if other.Step.Mapping == name {
				held = append(held, other.Step)
			}
		}
		// An event note is limited to 1 KiB; the guard's whole message is
		// on the mapping's status.
		r.Recorder.Eventf(m, nil, corev1.EventTypeWarning, h.Reason, "AccessEntry",
			"To run this plan anyway: %s. Held %s of the access entry of %s: %.500s",
			allowCommand(name, p.plan.RefusedHash), stepList(held), h.Step.PrincipalARN, refusalMessageOf(p.plan, h.Reason))
	}
	s.warned = warned
	blocked := 0.0
	if len(p.plan.Held) > 0 {
		blocked = 1
	}
	accessEntryBlocked.Set(blocked)

	// What the next pass tells drift by.
	for name := range s.synced {
		if _, ok := desired[name]; !ok {
			delete(s.synced, name)
		}
	}
	for name, out := range p.plan.Outcomes {
		if d := desired[name]; out.State == accessentry.StateSynced && d.Kind == accessentry.DesiredEntry {
			s.synced[name] = d.Entry
		}
	}
	r.reportEntries(p)
}

// reportEntries sets aws_auth_guardian_access_entries, filled in full
// before it is set: the entries of the cluster by whose they are, as
// listed at the start of the pass, and the mappings a person must act on.
func (r *AccessEntryReconciler) reportEntries(p accessEntryPass) {
	counts := map[string]float64{entryStateManaged: 0, entryStateUnmanaged: 0, entryStateConflict: 0, entryStateBlocked: 0, entryStateRefused: 0}
	for _, o := range p.observed {
		if o.Mapping() != "" {
			counts[entryStateManaged]++
		} else {
			counts[entryStateUnmanaged]++
		}
	}
	for _, out := range p.plan.Outcomes {
		switch out.State {
		case accessentry.StateConflict:
			counts[entryStateConflict]++
		case accessentry.StateRefused:
			counts[entryStateRefused]++
		}
	}
	// By the held steps, not the outcomes: a mapping being deleted has no
	// outcome, and its deletion is what a guard holds most often.
	blocked := map[string]bool{}
	for _, h := range p.plan.Held {
		blocked[h.Step.Mapping] = true
	}
	counts[entryStateBlocked] = float64(len(blocked))
	accessEntriesGauge.Reset()
	for state, n := range counts {
		accessEntriesGauge.WithLabelValues(state).Set(n)
	}
}

// reportNotAccepting clears what report says while the cluster takes no
// access entries: nothing is held, and no entry is anyone's concern.
func (r *AccessEntryReconciler) reportNotAccepting() {
	accessEntryBlocked.Set(0)
	accessEntriesGauge.Reset()
	r.reported = reportState{}
}

// The states of aws_auth_guardian_access_entries.
const (
	entryStateManaged   = "managed"   // entries tagged as the operator's
	entryStateUnmanaged = "unmanaged" // entries of someone else, left alone
	entryStateConflict  = "conflict"  // mappings whose principal has an entry not ours, or an older mapping
	entryStateBlocked   = "blocked"   // mappings whose steps a guard holds
	entryStateRefused   = "refused"   // mappings whose translation EKS refused
)

// mappingRef is what an event about the listed mapping name is about;
// false when the pass did not list it (the entry's tag names a mapping
// long gone).
func mappingRef(name string, listed map[string]listedMapping) (*iamv1alpha1.IAMIdentityMapping, bool) {
	l, ok := listed[name]
	if !ok {
		return nil, false
	}
	return &iamv1alpha1.IAMIdentityMapping{
		TypeMeta:   metav1.TypeMeta{APIVersion: iamv1alpha1.GroupVersion.String(), Kind: "IAMIdentityMapping"},
		ObjectMeta: metav1.ObjectMeta{Name: name, UID: l.uid},
	}, true
}

// stepList names steps for a person: "Create, Associate AmazonEKSClusterAdminPolicy".
func stepList(steps []accessentry.Step) string {
	names := make([]string, len(steps))
	for i, st := range steps {
		names[i] = string(st.Kind)
		if st.Policy.ARN != "" {
			names[i] += " " + st.Policy.ARN[strings.LastIndex(st.Policy.ARN, "/")+1:]
		}
	}
	return strings.Join(names, ", ")
}

func refusalMessageOf(s accessentry.Sync, reason string) string {
	for _, ref := range s.Refusals {
		if ref.Reason == reason {
			return ref.Message
		}
	}
	return reason
}

// allowCommand is what a person runs to let the refused plan of hash
// through, on a mapping whose steps it holds.
func allowCommand(mapping, hash string) string {
	return fmt.Sprintf("kubectl annotate iamidentitymapping %s --overwrite %s=%s", mapping, iamv1alpha1.AllowAccessEntryPlanAnnotation, hash)
}
