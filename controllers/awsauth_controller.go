// Package controllers holds the two reconcilers of aws-auth-guardian. The
// aws-auth reconciler keeps kube-system/aws-auth equal to the render of all
// IAMIdentityMappings; the mapping status reconciler writes each mapping's
// finalizer and status from the outcome the aws-auth reconciler last
// published. docs/design.md describes the whole.
package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/managed"
)

// CacheOptions limits the manager's cache to what the reconcilers read
// from it: the mappings and, of all CRDs, only ours. aws-auth is read from
// the API server; should a ConfigMap ever be read through the cache, it
// holds aws-auth alone, not every ConfigMap in the cluster. Its informers
// get their watches back as soon as the API server does (see reconnecting).
func CacheOptions() cache.Options {
	return cache.Options{
		NewInformer:      newReconnectingInformer,
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&corev1.ConfigMap{}: {
				Namespaces: map[string]cache.Config{managed.AWSAuthKey.Namespace: {}},
				Field:      fields.OneTermEqualSelector("metadata.name", managed.AWSAuthKey.Name),
			},
			&apiextensionsv1.CustomResourceDefinition{}: {
				Field: fields.OneTermEqualSelector("metadata.name", managed.CRDName),
			},
		},
	}
}

// AWSAuthReconciler renders IAMIdentityMappings into aws-auth.
//
// It runs with one worker on one key, aws-auth's, and keeps state between
// reconciles that is right only with one worker: the record of what it
// last applied, the rejected backup it has told of, whether the mapping
// watch runs, and the events seen on aws-auth. Two workers would also race
// each other's writes of the one object.
type AWSAuthReconciler struct {
	// Client reads mappings from the cache and writes everything.
	Client client.Client
	// APIReader reads aws-auth and the backup from the API server:
	// decisions to delete or replace aws-auth must not rest on a cache that
	// may lag our own last write.
	APIReader client.Reader
	// Cache serves the mapping watch.
	Cache    cache.Cache
	Recorder events.EventRecorder
	Mode     managed.Mode
	// BatchDelay lets a burst of mapping changes (a GitOps sync) land as
	// one write. Changes to aws-auth itself are never delayed.
	BatchDelay time.Duration
	// MaxRemovedShare is the largest share of aws-auth's entries one write
	// may remove (see awsauth.CheckRemovals).
	MaxRemovedShare float64
	// BackupNamespace holds the backup of the last applied data.
	BackupNamespace string
	// RecheckInterval bounds the time between two looks at aws-auth when no
	// event comes; 0 waits for events only.
	RecheckInterval time.Duration
	// AccessEntries is the access entry target, whose outcome the mappings'
	// status also shows; nil when it is off.
	AccessEntries *AccessEntryReconciler

	awsAuth, status  controller.Controller
	watchingMappings bool
	// events tells what the watch of aws-auth saw (see observe).
	events awsAuthEvents
	// lastApplied is the render this process last wrote, or read from an
	// intact backup: what it knows the backup holds.
	lastApplied *awsauth.Rendered
	// rejectedBackup is the resourceVersion of the backup last found
	// written by someone else, so that it is reported once; unreported
	// holds it until the report step has.
	rejectedBackup string
	unreported     *backupRejection
	// lastRender is the last render and what it was made of.
	lastRender *renderMemo
	// batch gathers a burst of mapping changes; observedSeen counts the
	// events on aws-auth up to the last observe.
	batch        batch
	observedSeen uint64
	// outcomes is what the status reconciler writes the mappings' status from.
	outcomes outcomes
	// systemMasters names the mappings granting it, as last logged.
	systemMasters string
}

// +kubebuilder:rbac:groups=iam.aws-auth-guardian.dev,resources=iamidentitymappings,verbs=get;list;watch;create;patch;update
// +kubebuilder:rbac:groups=iam.aws-auth-guardian.dev,resources=iamidentitymappings/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=iam.aws-auth-guardian.dev,resources=iamidentitymappings/finalizers,verbs=update
// +kubebuilder:rbac:groups="",namespace=kube-system,resources=configmaps,resourceNames=aws-auth,verbs=get;watch;update;patch;delete
// +kubebuilder:rbac:groups="",namespace=kube-system,resources=configmaps,verbs=create
// +kubebuilder:rbac:groups=apiextensions.k8s.io,resources=customresourcedefinitions,resourceNames=iamidentitymappings.iam.aws-auth-guardian.dev,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// SetupWithManager registers both reconcilers. aws-auth is watched on its
// own (see awsAuthSource). Mappings are watched only once their CRD
// exists, because a watch on a missing CRD would keep the manager from
// starting, and the part that keeps aws-auth alive must run without it.
// When the CRD is there at start, the mapping watch starts with the
// manager, so the first render need not wait for a second cache to fill.
func (r *AWSAuthReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	watcher, err := client.NewWithWatch(mgr.GetConfig(), client.Options{
		HTTPClient: mgr.GetHTTPClient(), Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper(),
	})
	if err != nil {
		return err
	}
	status := ctrl.NewControllerManagedBy(mgr).
		Named("mapping-status").
		// Each mapping is its own key, and the status writes are
		// independent of each other.
		WithOptions(controller.Options{MaxConcurrentReconciles: 4}).
		WatchesRawSource(r.outcomes.source())
	if r.AccessEntries != nil {
		status = status.WatchesRawSource(r.AccessEntries.statusSource())
	}
	r.status, err = status.Build(&MappingStatusReconciler{Client: r.Client, Recorder: r.Recorder, outcomes: &r.outcomes, accessEntries: r.AccessEntries})
	if err != nil {
		return err
	}
	r.awsAuth, err = ctrl.NewControllerManagedBy(mgr).
		Named("aws-auth").
		// One worker: see AWSAuthReconciler.
		WithOptions(controller.Options{MaxConcurrentReconciles: 1}).
		WatchesRawSource(r.awsAuthSource(watcher)).
		Watches(&apiextensionsv1.CustomResourceDefinition{}, enqueueAWSAuth(0, nil)).
		Build(r)
	if err != nil {
		return err
	}
	if why, err := crdUnusable(ctx, r.APIReader); err != nil || why != "" {
		// Watched once the CRD appears; its watch brings us back then.
		return nil
	}
	return r.watchMappings()
}

// watchMappings starts the mapping watch of both reconcilers, once. Our
// own status and finalizer writes do not change the generation, so they
// cause no work; a deletion does.
func (r *AWSAuthReconciler) watchMappings() error {
	if r.watchingMappings {
		return nil
	}
	mapping := client.Object(&iamv1alpha1.IAMIdentityMapping{})
	err := errors.Join(
		r.awsAuth.Watch(source.Kind(r.Cache, mapping, enqueueAWSAuth(r.BatchDelay, r.batch.add), predicate.GenerationChangedPredicate{})),
		r.status.Watch(source.Kind(r.Cache, mapping, &handler.EnqueueRequestForObject{}, predicate.GenerationChangedPredicate{})),
	)
	r.watchingMappings = err == nil
	return err
}

// enqueueAWSAuth maps every event to the one key, after delay, calling
// noted first when it is set.
func enqueueAWSAuth(delay time.Duration, noted func(time.Time)) handler.EventHandler {
	add := func(q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		if noted != nil {
			noted(time.Now())
		}
		q.AddAfter(reconcile.Request{NamespacedName: managed.AWSAuthKey}, delay)
	}
	return handler.Funcs{
		CreateFunc: func(_ context.Context, _ event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(q)
		},
		UpdateFunc: func(_ context.Context, _ event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(q)
		},
		DeleteFunc: func(_ context.Context, _ event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(q)
		},
		GenericFunc: func(_ context.Context, _ event.GenericEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(q)
		},
	}
}

// Reconcile brings aws-auth to the render of every IAMIdentityMapping, in
// five steps, once a burst of mapping changes is over (see batch; a change
// of aws-auth itself never waits):
//
//   - observe reads aws-auth from the API server, parsed once. A missing
//     aws-auth is recreated at once from the record of what was last
//     applied, before any mapping is read: nobody can use the cluster
//     meanwhile, and the outage must not grow with the number of mappings.
//   - render reads the mappings from the cache (adopting an aws-auth the
//     operator did not write, on first start) and renders them once:
//     entries, data, hash and size, and the outcome of each mapping.
//   - plan, pure (managed.PlanWrite), picks the one write that brings
//     aws-auth to the render, or refuses it by the guards.
//   - write does what the plan says and nothing else, fenced by the UID and
//     resourceVersion it was decided on, and records what it wrote.
//   - report emits every metric, log line and event of the reconcile, and
//     publishes its outcome, from which the status reconciler writes the
//     mappings' status on its own workers.
//
// It comes back after RecheckInterval even without an event: a watch can
// break without a sign (a connection that hangs rather than closes), and a
// deleted aws-auth must not wait for it.
func (r *AWSAuthReconciler) Reconcile(ctx context.Context, _ ctrl.Request) (ctrl.Result, error) {
	if seen, _ := r.events.last(); seen == r.observedSeen {
		if wait := r.batch.wait(time.Now(), r.BatchDelay, maxBatchWait*r.BatchDelay); wait > 0 {
			return ctrl.Result{RequeueAfter: wait}, nil
		}
	}
	r.batch.reset()
	observed, err := r.observe(ctx)
	r.observedSeen = observed.seen
	if err != nil {
		r.report(ctx, observed, nil, nil)
		return ctrl.Result{}, err
	}
	desired, renderErr := r.render(ctx, observed.Observed)
	// aws-auth may have changed (been deleted, say) while the mappings were
	// read and rendered: a plan on what was read before would wait for the
	// next reconcile to heal it.
	if observed, err = r.reobserve(ctx, observed); err != nil {
		r.report(ctx, observed, nil, nil)
		return ctrl.Result{}, err
	}
	plan := managed.PlanWrite(observed.Observed, desired.rendered, r.Mode, desired.guards)
	done := r.write(ctx, observed.Observed, plan)
	r.report(ctx, observed, &desired, &done)
	if err := errors.Join(renderErr, done.err, done.backupErr); err != nil {
		return ctrl.Result{}, err
	}
	return r.requeue(desired), nil
}

// requeue comes back after RecheckInterval, or sooner while an adoption
// waits for the cache to hold the mappings it created (their events bring
// us back then; the requeue is a safety net).
func (r *AWSAuthReconciler) requeue(d desired) ctrl.Result {
	after := r.RecheckInterval
	if d.adoption.pending && (after == 0 || after > time.Second) {
		after = time.Second
	}
	return ctrl.Result{RequeueAfter: after}
}

// crdUnusable says why mappings cannot be rendered now: the CRD is missing,
// not yet established, or being deleted (which deletes every mapping, and
// must not empty aws-auth).
func crdUnusable(ctx context.Context, reader client.Reader) (string, error) {
	crd := &apiextensionsv1.CustomResourceDefinition{}
	err := reader.Get(ctx, client.ObjectKey{Name: managed.CRDName}, crd)
	switch {
	case client.IgnoreNotFound(err) != nil:
		return "", fmt.Errorf("reading the IAMIdentityMapping CRD: %w", err)
	case err != nil:
		return "the IAMIdentityMapping CRD is not installed", nil
	case !crd.DeletionTimestamp.IsZero():
		return "the IAMIdentityMapping CRD is being deleted", nil
	}
	for _, c := range crd.Status.Conditions {
		if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
			return "", nil
		}
	}
	return "the IAMIdentityMapping CRD is not established yet", nil
}
