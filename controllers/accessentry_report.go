package controllers

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/accessentry"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/managed"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/migrate"
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

// ReasonAPIModeBlockers is the reason of the Normal event that says how
// many things block switching the cluster to API mode, when that changes.
const ReasonAPIModeBlockers = "APIModeBlockers"

// apiModeBlockers is a vector without labels so that it is absent until
// the access entry target, which sets it, has made its first pass: with
// the target off it says nothing rather than a 0 that would read as ready.
var apiModeBlockers = prometheus.NewGaugeVec(prometheus.GaugeOpts{
	Name: "aws_auth_guardian_api_mode_blockers",
	Help: "What would lose or change access if the cluster were switched to the API authentication mode now, as manager migrate counts it: mappings in aws-auth without an equal access entry (node roles included), plus 1 when no access entry has AmazonEKSClusterAdminPolicy on the whole cluster. Set only while the access entry target is on.",
}, nil)

func init() {
	metrics.Registry.MustRegister(apiModeBlockers)
}

// maxNamedBlockers is how many mappings the event names: an event note is
// limited to 1 KiB, and manager migrate lists them all.
const maxNamedBlockers = 5

// reportAPIMode counts what blocks API mode with migrate.Analyze, the
// function `manager migrate` prints, so that the two never disagree, and
// says so when the count changes. observed nil is a cluster that takes no
// access entries (CONFIG_MAP). Nothing is said while the CRD is unusable,
// as no mapping can be read.
func (r *AccessEntryReconciler) reportAPIMode(ctx context.Context, t translation, observed []accessentry.Observed) {
	if t.held != nil {
		return
	}
	report := migrate.Analyze(migrate.Input{Mappings: t.grants, Cluster: &migrate.Cluster{Mode: r.mode, Entries: observed}})
	n := len(report.Blockers)
	apiModeBlockers.WithLabelValues().Set(float64(n))
	prev := r.apiModeBlockers
	r.apiModeBlockers.known, r.apiModeBlockers.count = true, n
	// Once per change; at start only when something blocks, so that a
	// restart of a cluster ready for API mode says nothing.
	if prev.known && prev.count == n || !prev.known && n == 0 {
		return
	}
	message := apiModeMessage(report)
	ctrl.LoggerFrom(ctx).Info("What blocks API mode changed", "blockers", n, "mappings", len(report.BlockingMappings()))
	// The event is on aws-auth, not on a mapping: the count is about the
	// cluster's aws-auth as a whole, and aws-auth is the object the person
	// about to switch the mode looks at (kubectl describe cm -n kube-system
	// aws-auth), in kube-system beside the cluster's other events.
	subject := &corev1.ConfigMap{}
	if err := r.Client.Get(ctx, managed.AWSAuthKey, subject); err != nil {
		subject = awsAuthOrReference(nil)
	}
	// The events API folds events of one object, reason, action and
	// related object into a series that keeps the first note, so that a
	// new count would read as an old one: the count is in the action, and
	// the first mapping that blocks is the related object.
	var related runtime.Object
	if names := report.BlockingMappings(); len(names) > 0 {
		if m, ok := mappingRef(names[0], t.listed); ok {
			related = m
		}
	}
	r.Recorder.Eventf(subject, related, corev1.EventTypeNormal, ReasonAPIModeBlockers, fmt.Sprintf("Counted%d", n), "%s", message)
}

// apiModeMessage says what blocks API mode, naming the first few mappings.
func apiModeMessage(report migrate.Report) string {
	if len(report.Blockers) == 0 {
		return "Nothing blocks API mode now: every mapping in aws-auth has an equal access entry, and an entry has AmazonEKSClusterAdminPolicy on the whole cluster"
	}
	names := report.BlockingMappings()
	var parts []string
	if len(names) > 0 {
		named := strings.Join(names[:min(len(names), maxNamedBlockers)], ", ")
		if len(names) > maxNamedBlockers {
			named += fmt.Sprintf(" and %d more", len(names)-maxNamedBlockers)
		}
		what := "mappings would"
		if len(names) == 1 {
			what = "mapping would"
		}
		parts = append(parts, fmt.Sprintf("%d %s lose or change access (%s)", len(names), what, named))
	}
	for _, b := range report.Blockers {
		if b.Kind == migrate.BlockClusterAdmin {
			parts = append(parts, "no access entry has AmazonEKSClusterAdminPolicy on the whole cluster")
		}
	}
	return fmt.Sprintf("API mode is blocked by %d: %s. manager migrate --eks-cluster-name NAME says why for each", len(report.Blockers), strings.Join(parts, "; "))
}
