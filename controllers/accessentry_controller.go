package controllers

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/accessentry"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/eksapi"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/managed"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/migrate"
)

// accessEntryKey is the one key of the access entry reconciler: every pass
// plans all entries of the cluster together, as the guards measure the
// plan as a whole.
var accessEntryKey = reconcile.Request{NamespacedName: types.NamespacedName{Name: "eks-access-entries"}}

// afterChange is how soon a pass that changed entries comes back: what it
// did is only known once EKS is read again, and the mappings' outcome
// should not wait a whole resync for it.
const afterChange = time.Second

// AccessEntryReconciler keeps the EKS access entries of one cluster equal
// to the translation of every IAMIdentityMapping. It is a controller of its
// own, beside the aws-auth one, so that healing aws-auth never waits on an
// EKS call (throttled, slow, or failing with backoff).
//
// It runs with one worker on one key and keeps state between passes that
// is right only with one worker: the cluster's authentication mode and the
// entries it last described, so that a pass costs ceil(N/100) list calls,
// a describe of each entry that is new, and the describes of the share of
// entries whose turn it is to be checked (see observe).
type AccessEntryReconciler struct {
	// Client reads mappings from the cache.
	Client client.Client
	// APIReader reads the CRD, as the aws-auth reconciler does.
	APIReader client.Reader
	// Cache serves the mapping watch.
	Cache cache.Cache
	EKS   *eksapi.Client
	// Recorder emits the events on the mappings; by default the manager's,
	// under the name the aws-auth reconciler's events have.
	Recorder events.EventRecorder
	// Resync is how often the entries are listed without a mapping event,
	// which is how entries changed out of band are found.
	Resync time.Duration
	// FullResync is how often the mode is read again, and the time in
	// which every entry is described again, which is how an entry changed
	// in place is found.
	FullResync time.Duration
	// MaxRemovedShare is the largest share of the operator's entries one
	// pass may delete (see accessentry.Guards).
	MaxRemovedShare float64
	// APIRate is the EKS client's rate limit in calls per second
	// (eksapi.RateLimit.QPS), of which the checks of entries in place take
	// at most checkShare (see toDescribe); zero leaves them unbounded.
	APIRate float64

	controller       controller.Controller
	watchingMappings bool
	// mappingChanged is set by the mapping watch and cleared when a pass
	// begins: the checks of entries in place stop at once when it is set,
	// so that a mapping's change never waits behind them.
	mappingChanged atomic.Bool
	// mode is the authentication mode as last read, at fullAt.
	mode   string
	fullAt time.Time
	// described are the entries as last described, by principal key. An
	// entry a step touched is dropped, so that the next pass describes it.
	described map[string]describedEntry
	// reported is what report remembers to keep its events sparse.
	reported reportState
	// refused are, by mapping, the translations EKS refused (see
	// accessentry.DesiredRefused).
	refused map[string]refusedTranslation
	// apiModeBlockers is the count of blockers last reported, for the
	// event on its change; known is false until the first report.
	apiModeBlockers struct {
		known bool
		count int
	}

	// mu guards last and queue, which the status reconciler reads.
	mu   sync.Mutex
	last *accessEntryOutcome
	// queue is the status reconciler's, once it started (statusSource).
	queue workqueue.TypedRateLimitingInterface[reconcile.Request]
}

// accessEntryOutcome is what one pass made of the mappings: what their
// AccessEntrySynced condition and status.accessEntry are written from.
type accessEntryOutcome struct {
	// accepting is false when the cluster's mode takes no access entries
	// (CONFIG_MAP); nothing else is set then.
	accepting bool
	mode      string
	sync      accessentry.Sync
	desired   map[string]accessentry.Desired
	// listed are the mappings the pass translated, by name.
	listed map[string]listedMapping
	// keys tell, by mapping, whether two outcomes give it another status.
	keys map[string]string
}

// newAccessEntryOutcome is the outcome of a pass that planned plan for
// desired, translated from the mappings listed.
func newAccessEntryOutcome(mode string, desired []accessentry.Desired, listed map[string]listedMapping, plan accessentry.Sync) *accessEntryOutcome {
	o := &accessEntryOutcome{accepting: true, mode: mode, sync: plan, listed: listed,
		desired: make(map[string]accessentry.Desired, len(desired)), keys: make(map[string]string, len(desired))}
	for _, d := range desired {
		o.desired[d.Name] = d
		out := plan.Outcomes[d.Name]
		o.keys[d.Name] = fmt.Sprintf("%d|%s|%s|%v|%s|%s|%s", listed[d.Name].generation, d.UID, d.Kind, d.Err, d.Entry.Status(), out.State, out.Message)
	}
	// A mapping being deleted is waiting for its entry to go: its status
	// changes when the steps for it are done, or held.
	for name, l := range listed {
		if l.deleting {
			pending, held := o.deletion(name)
			o.keys[name] = fmt.Sprintf("deleting|%s|%t|%s", l.uid, pending, held)
		}
	}
	return o
}

// deletion says what is left to do about the entries tagged with the name
// of a mapping being deleted: pending when steps for it remain, held with
// the message of the guard that holds them.
func (o *accessEntryOutcome) deletion(name string) (pending bool, held string) {
	for _, st := range o.sync.Steps {
		if st.Mapping == name {
			pending = true
		}
	}
	for _, h := range o.sync.Held {
		if h.Step.Mapping != name {
			continue
		}
		for _, ref := range o.sync.Refusals {
			if ref.Reason == h.Reason {
				return true, ref.Message
			}
		}
		return true, h.Reason
	}
	return pending, ""
}

// SetupWithManager registers the reconciler. Like the aws-auth reconciler,
// it watches mappings only once their CRD is usable, so that a missing CRD
// does not keep the manager from starting; the first pass is queued at
// start, and each pass queues the next after Resync.
func (r *AccessEntryReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	if r.Resync <= 0 || r.FullResync < r.Resync {
		return fmt.Errorf("the access entry resync (%v) must be positive and the full resync (%v) no shorter", r.Resync, r.FullResync)
	}
	if r.Recorder == nil {
		r.Recorder = mgr.GetEventRecorder("aws-auth-guardian")
	}
	start := source.Func(func(_ context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
		q.Add(accessEntryKey)
		return nil
	})
	var err error
	r.controller, err = ctrl.NewControllerManagedBy(mgr).
		Named("eks-access-entries").
		// One worker: see AccessEntryReconciler. A failed pass backs off
		// as the default does, but never beyond a resync: with one key,
		// the default's cap (16 minutes) would let a few bad minutes of
		// the EKS API stop drift repair for a quarter of an hour.
		WithOptions(controller.Options{
			MaxConcurrentReconciles: 1,
			RateLimiter:             workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](100*time.Millisecond, r.Resync),
		}).
		WatchesRawSource(start).
		Build(r)
	if err != nil {
		return err
	}
	if why, err := crdUnusable(ctx, r.APIReader); err != nil || why != "" {
		return nil
	}
	return r.watchMappings()
}

func (r *AccessEntryReconciler) watchMappings() error {
	if r.watchingMappings {
		return nil
	}
	toKey := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		r.mappingChanged.Store(true)
		return []reconcile.Request{accessEntryKey}
	})
	// Annotations too: the one that allows a held plan should act at once,
	// not a resync later.
	changed := predicate.Or[client.Object](predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{})
	err := r.controller.Watch(source.Kind(r.Cache, client.Object(&iamv1alpha1.IAMIdentityMapping{}), toKey, changed))
	r.watchingMappings = err == nil
	return err
}

// Reconcile runs one pass: observe (the mode, then the entries), translate
// every mapping, plan (accessentry.Plan, pure, with the lock-out guards),
// execute the steps in order, and publish the outcome. It stops at the
// first failed step and returns its error, for the queue's backoff: the
// steps are ordered so that stopping anywhere leaves nobody locked out.
func (r *AccessEntryReconciler) Reconcile(ctx context.Context, _ ctrl.Request) (ctrl.Result, error) {
	log := logf.FromContext(ctx)
	// This pass reads the mappings after this, so it plans every change
	// made until now.
	r.mappingChanged.Store(false)
	full := r.fullAt.IsZero() || time.Since(r.fullAt) >= r.FullResync
	if full {
		mode, err := r.EKS.AuthenticationMode(ctx)
		if err != nil {
			return ctrl.Result{}, fmt.Errorf("reading the cluster's authentication mode: %w", err)
		}
		if mode != r.mode {
			// Once per change of mode, not every pass.
			if !acceptsEntries(mode) {
				log.Info("The cluster does not accept access entries; leaving them alone until its authentication mode changes", "authenticationMode", mode)
			}
			authenticationMode.Reset()
			authenticationMode.WithLabelValues(cmp.Or(mode, "CONFIG_MAP")).Set(1)
		}
		r.mode, r.fullAt = mode, time.Now()
	}
	if !acceptsEntries(r.mode) {
		r.reportNotAccepting()
		r.publish(&accessEntryOutcome{mode: r.mode})
		// The cluster holds no entries: every grant of aws-auth blocks API
		// mode, which is what a person about to migrate it wants counted.
		t, err := r.translate(ctx, 0)
		if err != nil {
			return ctrl.Result{}, err
		}
		r.reportAPIMode(ctx, t, nil)
		return ctrl.Result{RequeueAfter: r.Resync}, nil
	}

	observed, err := r.observe(ctx)
	if err != nil {
		return ctrl.Result{}, err
	}
	t, err := r.translate(ctx, len(observed))
	if err != nil {
		return ctrl.Result{}, err
	}
	desired, listed := t.desired, t.listed
	r.reportAPIMode(ctx, t, observed)
	guards := accessentry.Guards{MaxRemovedShare: r.MaxRemovedShare, Held: t.held}
	plan := accessentry.Plan(desired, observed, guards)
	if allowedBy(plan, t.allow) {
		// The plan is pure: planned again with the hash allowed, it is the
		// same plan, run whole.
		guards.Allowed = plan.RefusedHash
		plan = accessentry.Plan(desired, observed, guards)
		log.Info("Running an access entry plan a guard refused, as allowed by annotation", "guards", len(plan.Allowed), "sha256", guards.Allowed)
	}
	if plan.Refusal != nil {
		log.Info("Access entry changes held back", "reason", plan.Refusal.Reason, "message", plan.Refusal.Message, "held", len(plan.Held))
	}
	r.publish(newAccessEntryOutcome(r.mode, desired, listed, plan))

	done, again, err := r.execute(ctx, plan.Steps, desired, len(observed))
	r.report(ctx, accessEntryPass{observed: observed, desired: desired, listed: listed, plan: plan, done: done})
	switch {
	case err != nil:
		return ctrl.Result{}, err
	case done > 0 || again:
		return ctrl.Result{RequeueAfter: min(afterChange, r.Resync)}, nil
	}
	return ctrl.Result{RequeueAfter: r.Resync}, nil
}

// acceptsEntries says whether a cluster of this authentication mode uses
// access entries. An empty mode is a cluster from before access entries,
// which is CONFIG_MAP.
func acceptsEntries(mode string) bool {
	return mode == "API" || mode == "API_AND_CONFIG_MAP"
}

// describedEntry is an entry as described, and when.
type describedEntry struct {
	entry eksapi.Entry
	at    time.Time
}

// checkShare is the largest part of the EKS rate limit (APIRate) the
// checks of entries in place may take: they run at rest, all the time, and
// the rest of the limit stays for the lists, new entries and changes (and
// the account's EKS throttle is shared with every other tool). At the
// default 5 calls/s that is 1 call/s, 30 entries a minute: every entry is
// checked within the full resync up to 300 entries, and within
// N/30 minutes beyond.
const checkShare = 0.2

// callsPerCheck are the calls of one entry's check: DescribeAccessEntry and
// ListAssociatedAccessPolicies (one page up to 100 policies).
const callsPerCheck = 2

// observe lists the entries and describes those not described yet, and,
// to find entries changed in place, the ones described longest ago (see
// toDescribe). The check is spread over the passes rather than done at
// once, so that no pass takes long, and it stops as soon as a mapping
// changes, so that the change never waits behind it: the rest of the turn
// comes at the next pass. An entry gone from the list is forgotten.
func (r *AccessEntryReconciler) observe(ctx context.Context) ([]accessentry.Observed, error) {
	arns, err := r.EKS.ListEntries(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing the access entries: %w", err)
	}
	if r.described == nil {
		r.described = map[string]describedEntry{}
	}
	listed := make(map[string]string, len(arns))
	for _, arn := range arns {
		listed[accessentry.PrincipalKey(arn)] = arn
	}
	maps.DeleteFunc(r.described, func(k string, _ describedEntry) bool { _, ok := listed[k]; return !ok })
	fresh, checks := r.toDescribe(listed)
	for i, k := range append(fresh, checks...) {
		if i >= len(fresh) && r.mappingChanged.Load() {
			break
		}
		e, err := r.EKS.DescribeEntry(ctx, listed[k])
		switch {
		case eksapi.IsNotFound(err):
			// Deleted since the list: as if not listed.
			delete(r.described, k)
			continue
		case err != nil:
			return nil, fmt.Errorf("describing the access entry of %s: %w", listed[k], err)
		}
		r.described[k] = describedEntry{entry: e, at: time.Now()}
	}
	observed := make([]accessentry.Observed, 0, len(r.described))
	for _, k := range slices.Sorted(maps.Keys(r.described)) {
		observed = append(observed, migrate.Observed(r.described[k].entry))
	}
	return observed, nil
}

// toDescribe is, of the entries listed (by principal key), those not
// described yet (fresh: the plan needs them), and the checks: the turn of
// those described longest ago, ceil(N x Resync / FullResync) of them so
// that each is described again within a FullResync, but no more than
// checkShare of APIRate over a Resync allows (at least one). Past that
// bound (300 entries at the defaults) an entry changed in place is found
// within ceil(N / checks per pass) resyncs instead of a FullResync.
func (r *AccessEntryReconciler) toDescribe(listed map[string]string) (fresh, checks []string) {
	var known []string
	for k := range listed {
		if _, ok := r.described[k]; ok {
			known = append(known, k)
		} else {
			fresh = append(fresh, k)
		}
	}
	slices.Sort(fresh)
	slices.SortFunc(known, func(a, b string) int {
		return cmp.Or(r.described[a].at.Compare(r.described[b].at), strings.Compare(a, b))
	})
	return fresh, known[:min(r.checksPerPass(len(listed)), len(known))]
}

// checksPerPass is how many entries of n a pass checks in place.
func (r *AccessEntryReconciler) checksPerPass(n int) int {
	turn := int(math.Ceil(float64(n) * float64(r.Resync) / float64(r.FullResync)))
	if r.APIRate <= 0 {
		return turn
	}
	budget := int(checkShare * r.APIRate * r.Resync.Seconds() / callsPerCheck)
	return min(turn, max(1, budget))
}

// translation is what translate made of the mappings.
type translation struct {
	// desired is every mapping's Desired; a mapping being deleted has none,
	// so that its entry goes (unless a guard holds it).
	desired []accessentry.Desired
	// listed are the mappings it was made of, by name.
	listed map[string]listedMapping
	// held, set while the CRD is unusable (no mapping can be read), holds
	// the whole pass.
	held *awsauth.Refusal
	// allow is, by mapping, its AllowAccessEntryPlanAnnotation.
	allow map[string]string
	// grants are the mappings not being deleted, as aws-auth holds them,
	// with their translation: what migrate.Analyze weighs.
	grants []migrate.Mapping
}

// translate translates every mapping. entries is how many entries the
// cluster has.
func (r *AccessEntryReconciler) translate(ctx context.Context, entries int) (translation, error) {
	why, err := crdUnusable(ctx, r.APIReader)
	if err != nil {
		return translation{}, err
	}
	if why != "" {
		return translation{held: &awsauth.Refusal{Reason: awsauth.RefusedCRDUnusable, Message: why}}, nil
	}
	if err := r.watchMappings(); err != nil {
		return translation{}, err
	}
	var list iamv1alpha1.IAMIdentityMappingList
	if err := r.Client.List(ctx, &list); err != nil {
		return translation{}, fmt.Errorf("listing the IAMIdentityMappings: %w", err)
	}
	t := translation{listed: make(map[string]listedMapping, len(list.Items)), allow: map[string]string{}}
	for i := range list.Items {
		m := &list.Items[i]
		t.listed[m.Name] = listedMapping{uid: m.UID, generation: m.Generation, deleting: !m.DeletionTimestamp.IsZero()}
		if v := m.Annotations[iamv1alpha1.AllowAccessEntryPlanAnnotation]; v != "" {
			t.allow[m.Name] = v
		}
		if m.DeletionTimestamp.IsZero() {
			d := r.desiredOf(ctx, m, entries)
			t.desired = append(t.desired, d)
			t.grants = append(t.grants, migrate.Mapping{Grant: managed.MappingInput(m), Desired: d})
		}
	}
	// A refusal is of one mapping: gone or being deleted, it is forgotten,
	// so that a new mapping of the same name is asked for afresh.
	maps.DeleteFunc(r.refused, func(name string, _ refusedTranslation) bool {
		l, ok := t.listed[name]
		return !ok || l.deleting
	})
	return t, nil
}

// allowedBy says whether a mapping whose steps plan holds carries the
// annotation that allows plan. Only such a mapping counts: the person who
// lets a lock-out guard through does it on what the guard holds, and the
// hash names the whole plan, so an old annotation allows nothing new.
func allowedBy(plan accessentry.Sync, allow map[string]string) bool {
	if plan.RefusedHash == "" {
		return false
	}
	for _, h := range plan.Held {
		if allow[h.Step.Mapping] == plan.RefusedHash {
			return true
		}
	}
	return false
}

// desiredOf translates one mapping as migrate.Desire does, which asks
// IAM for the ARN of a role written without its path, and keeps a
// translation EKS refused as refused. entries is how many entries the
// cluster has.
func (r *AccessEntryReconciler) desiredOf(ctx context.Context, m *iamv1alpha1.IAMIdentityMapping, entries int) accessentry.Desired {
	d := migrate.Desire(ctx, m, r.EKS)
	if d.Kind != accessentry.DesiredEntry {
		return d
	}
	if ref, ok := r.refused[m.Name]; ok {
		if accessentry.Equal(ref.entry, d.Entry) && !ref.roomSince(entries) {
			return accessentry.Desired{Name: d.Name, UID: d.UID, Created: d.Created, Kind: accessentry.DesiredRefused, Err: ref.err}
		}
		delete(r.refused, m.Name)
	}
	return d
}

// refusedTranslation is a translation EKS refused, and EKS's reason. EKS
// does not change its mind about an invalid request, so it is asked again
// only once the mapping translates to something else; about a limit
// (entries per cluster), once the cluster has fewer entries than when it
// refused. Asking again at every resync would flip the mapping's status
// and its events for nothing.
type refusedTranslation struct {
	entry accessentry.Entry
	err   error
	// overLimit is set for a limit refusal, made when the cluster had
	// entries entries.
	overLimit bool
	entries   int
}

func (ref refusedTranslation) roomSince(entries int) bool {
	return ref.overLimit && entries < ref.entries
}

// execute runs the steps in order and stops at the first that fails. done
// counts the steps that ran; again says the next pass should come soon: a
// create found its entry existing already (someone made it since the
// list), or EKS refused a step for what it asks. Such a refusal is kept in
// r.refused, so that the next pass plans without that mapping's steps
// (and its guards count what is really there) rather than stopping at the
// same step every pass. entries is how many entries the cluster has.
// Every entry a step touched is described again by the next pass.
func (r *AccessEntryReconciler) execute(ctx context.Context, steps []accessentry.Step, desired []accessentry.Desired, entries int) (done int, again bool, err error) {
	for _, st := range steps {
		k := accessentry.PrincipalKey(st.PrincipalARN)
		err := r.run(ctx, st)
		delete(r.described, k)
		switch {
		case err == nil:
			done++
		case (st.Kind == accessentry.StepCreate || st.Kind == accessentry.StepRecreate) && eksapi.IsConflict(err):
			return done, true, nil
		case eksapi.IsRefused(err) && r.refuse(st.Mapping, desired, entries, err):
			logf.FromContext(ctx).Info("EKS refused an access entry step; the mapping's entry is kept as it is", "mapping", st.Mapping,
				"principalARN", st.PrincipalARN, "step", st.Kind, "reason", eksapi.Message(err))
			return done, true, nil
		default:
			return done, false, fmt.Errorf("%s of the access entry of %s (mapping %s): %w", st.Kind, st.PrincipalARN, st.Mapping, err)
		}
	}
	return done, false, nil
}

// refuse remembers that EKS refused a step toward the translation of
// mapping; false when the step was for no translation (an entry being
// deleted), which is then an error like any other.
func (r *AccessEntryReconciler) refuse(mapping string, desired []accessentry.Desired, entries int, err error) bool {
	i := slices.IndexFunc(desired, func(d accessentry.Desired) bool {
		return d.Name == mapping && d.Kind == accessentry.DesiredEntry
	})
	if i < 0 {
		return false
	}
	if r.refused == nil {
		r.refused = map[string]refusedTranslation{}
	}
	r.refused[mapping] = refusedTranslation{entry: desired[i].Entry, err: errors.New(eksapi.Message(err)),
		overLimit: eksapi.IsLimitExceeded(err), entries: entries}
	return true
}

// run makes the calls of one step.
func (r *AccessEntryReconciler) run(ctx context.Context, st accessentry.Step) error {
	switch st.Kind {
	case accessentry.StepTag:
		d, ok := r.described[accessentry.PrincipalKey(st.PrincipalARN)]
		e := d.entry
		if !ok {
			return errors.New("the entry to tag was not described")
		}
		tags := map[string]string{accessentry.MappingTag: st.Mapping}
		if st.Adopt {
			tags[accessentry.AdoptedTag] = "true"
		}
		return r.EKS.TagEntry(ctx, e.ARN, tags)
	case accessentry.StepRelease:
		d, ok := r.described[accessentry.PrincipalKey(st.PrincipalARN)]
		e := d.entry
		if !ok {
			return errors.New("the entry to release was not described")
		}
		return r.EKS.UntagEntry(ctx, e.ARN, []string{accessentry.MappingTag, accessentry.AdoptedTag})
	case accessentry.StepRecreate:
		if err := r.EKS.DeleteEntry(ctx, st.PrincipalARN); err != nil && !eksapi.IsNotFound(err) {
			return err
		}
		return r.create(ctx, st)
	case accessentry.StepCreate:
		return r.create(ctx, st)
	case accessentry.StepUpdate:
		return r.EKS.UpdateEntry(ctx, st.PrincipalARN, st.Entry.Username, st.Entry.KubernetesGroups)
	case accessentry.StepAssociate:
		scope := eksapi.Scope{Type: eksapi.ScopeCluster}
		if len(st.Policy.Namespaces) > 0 {
			scope = eksapi.Scope{Type: eksapi.ScopeNamespace, Namespaces: st.Policy.Namespaces}
		}
		return r.EKS.AssociatePolicy(ctx, st.PrincipalARN, st.Policy.ARN, scope)
	case accessentry.StepDisassociate:
		err := r.EKS.DisassociatePolicy(ctx, st.PrincipalARN, st.Policy.ARN)
		if eksapi.IsNotFound(err) {
			return nil
		}
		return err
	case accessentry.StepDelete:
		err := r.EKS.DeleteEntry(ctx, st.PrincipalARN)
		if eksapi.IsNotFound(err) {
			return nil
		}
		return err
	}
	return fmt.Errorf("unknown step %q", st.Kind)
}

func (r *AccessEntryReconciler) create(ctx context.Context, st accessentry.Step) error {
	_, err := r.EKS.CreateEntry(ctx, eksapi.Entry{
		PrincipalARN: st.Entry.PrincipalARN,
		Type:         string(st.Entry.Type),
		Username:     st.Entry.Username,
		Groups:       st.Entry.KubernetesGroups,
		Tags:         map[string]string{accessentry.MappingTag: st.Mapping},
	})
	return err
}

// publish makes o the outcome the status reconciler writes from, and
// queues the mappings whose status it may change: those whose key changed,
// and all of them when the cluster's mode did.
func (r *AccessEntryReconciler) publish(o *accessEntryOutcome) {
	r.mu.Lock()
	defer r.mu.Unlock()
	prev := r.last
	r.last = o
	if r.queue == nil {
		return
	}
	names := map[string]bool{}
	switch {
	// A change of mode changes what Ready depends on (API: the access
	// entries alone), for every mapping.
	case prev == nil || prev.accepting != o.accepting || prev.mode != o.mode:
		for name := range o.listed {
			names[name] = true
		}
		if prev != nil {
			for name := range prev.listed {
				names[name] = true
			}
		}
	default:
		for name, key := range o.keys {
			names[name] = prev.keys[name] != key
		}
		for name := range prev.keys {
			if _, ok := o.keys[name]; !ok {
				names[name] = true
			}
		}
	}
	for name, changed := range names {
		if changed {
			r.queue.Add(reconcile.Request{NamespacedName: types.NamespacedName{Name: name}})
		}
	}
}

// statusSource gives the status reconciler's queue to publish.
func (r *AccessEntryReconciler) statusSource() source.Source {
	return source.Func(func(_ context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.queue = q
		if r.last != nil {
			for name := range r.last.listed {
				q.Add(reconcile.Request{NamespacedName: types.NamespacedName{Name: name}})
			}
		}
		return nil
	})
}

// outcome is the last published outcome, nil before the first pass.
func (r *AccessEntryReconciler) outcome() *accessEntryOutcome {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

// LastSync is the plan of the last pass, and false before the first pass
// planned or while the cluster does not accept access entries. It is for
// tests and diagnostics; the mappings' status is written from the same.
func (r *AccessEntryReconciler) LastSync() (accessentry.Sync, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.last == nil || !r.last.accepting {
		return accessentry.Sync{}, false
	}
	return r.last.sync, true
}
