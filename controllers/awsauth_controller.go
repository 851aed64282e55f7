// Package controllers holds the one reconciler of aws-auth-guardian: it
// keeps kube-system/aws-auth equal to the render of all IAMIdentityMappings.
package controllers

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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

// CacheOptions limits the manager's cache to what the reconciler reads
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
type AWSAuthReconciler struct {
	// Client reads mappings from the cache and writes everything.
	Client client.Client
	// APIReader reads aws-auth and the backup from the API server:
	// decisions to delete or replace aws-auth must not rest on a cache that
	// may lag our own last write.
	APIReader client.Reader
	// Cache serves the mapping watch, started once the CRD exists.
	Cache    cache.Cache
	Recorder events.EventRecorder
	Mode     managed.Mode
	// BatchDelay lets a burst of mapping changes (a GitOps sync) land as
	// one write. Changes to aws-auth itself are never delayed.
	BatchDelay time.Duration
	// MaxRemovedShare is the largest share of aws-auth's entries one write
	// may remove (see awsauth.CheckWipe).
	MaxRemovedShare float64
	// BackupNamespace holds the backup of the last applied data.
	BackupNamespace string
	// RecheckInterval bounds the time between two looks at aws-auth when no
	// event comes; 0 waits for events only.
	RecheckInterval time.Duration

	controller       controller.Controller
	watchingMappings bool
	// lastApplied is the data this process last wrote, or read from an
	// intact backup: what it knows the backup holds.
	lastApplied map[string]string
	// rejectedBackup is the resourceVersion of the backup last found
	// written by someone else, so that it is reported once.
	rejectedBackup string
	// awsAuthChanged is raised by every event on aws-auth, so that a
	// deleted aws-auth waits neither for a render of thousands of
	// mappings (see reread) nor for their status (see reportStatus).
	awsAuthChanged atomic.Bool
	systemMasters  string // the mappings granting it, as last logged
}

// +kubebuilder:rbac:groups=iam.aws-auth-guardian.dev,resources=iamidentitymappings,verbs=get;list;watch;create;patch;update
// +kubebuilder:rbac:groups=iam.aws-auth-guardian.dev,resources=iamidentitymappings/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=iam.aws-auth-guardian.dev,resources=iamidentitymappings/finalizers,verbs=update
// +kubebuilder:rbac:groups="",namespace=kube-system,resources=configmaps,resourceNames=aws-auth,verbs=get;watch;update;patch;delete
// +kubebuilder:rbac:groups="",namespace=kube-system,resources=configmaps,verbs=create
// +kubebuilder:rbac:groups=apiextensions.k8s.io,resources=customresourcedefinitions,resourceNames=iamidentitymappings.iam.aws-auth-guardian.dev,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// SetupWithManager registers the reconciler. aws-auth is watched on its
// own (see awsAuthSource). Mappings are watched only once their CRD
// exists, because a watch on a missing CRD would keep the manager from
// starting, and the part that keeps aws-auth alive must run without it.
func (r *AWSAuthReconciler) SetupWithManager(mgr ctrl.Manager) error {
	watcher, err := client.NewWithWatch(mgr.GetConfig(), client.Options{
		HTTPClient: mgr.GetHTTPClient(), Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper(),
	})
	if err != nil {
		return err
	}
	c, err := ctrl.NewControllerManagedBy(mgr).
		Named("aws-auth").
		WatchesRawSource(r.awsAuthSource(watcher)).
		Watches(&apiextensionsv1.CustomResourceDefinition{}, enqueueAWSAuth(0)).
		Build(r)
	r.controller = c
	return err
}

// watchMappings starts the mapping watch, once.
func (r *AWSAuthReconciler) watchMappings() error {
	if r.watchingMappings {
		return nil
	}
	// Our own status and finalizer writes do not change the generation, so
	// they cause no work; a deletion does.
	err := r.controller.Watch(source.Kind(r.Cache, client.Object(&iamv1alpha1.IAMIdentityMapping{}),
		enqueueAWSAuth(r.BatchDelay), predicate.GenerationChangedPredicate{}))
	r.watchingMappings = err == nil
	return err
}

// enqueueAWSAuth maps every event to the one key, after delay.
func enqueueAWSAuth(delay time.Duration) handler.EventHandler {
	add := func(q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
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

// Reconcile renders all mappings, brings aws-auth to the render unless a
// guard refuses it, then reports on each mapping. It comes back after
// RecheckInterval even without an event: a watch can break without a sign
// (a connection that hangs rather than closes), and a deleted aws-auth
// must not wait for it.
func (r *AWSAuthReconciler) Reconcile(ctx context.Context, _ ctrl.Request) (ctrl.Result, error) {
	result, err := r.reconcile(ctx)
	if err == nil && r.RecheckInterval > 0 && (result.RequeueAfter == 0 || result.RequeueAfter > r.RecheckInterval) {
		result.RequeueAfter = r.RecheckInterval
	}
	return result, err
}

func (r *AWSAuthReconciler) reconcile(ctx context.Context) (ctrl.Result, error) {
	live, err := r.liveAWSAuth(ctx)
	if err != nil {
		return ctrl.Result{}, err
	}
	if why, err := r.crdUnusable(ctx); err != nil || why != "" {
		if why != "" {
			r.holdWithoutCRD(ctx, live, why)
		}
		return ctrl.Result{}, errors.Join(err, r.keep(ctx, live))
	}
	if err := r.watchMappings(); err != nil {
		return ctrl.Result{}, errors.Join(err, r.keep(ctx, live))
	}
	mappings, err := r.listMappings(ctx)
	if err != nil {
		return ctrl.Result{}, errors.Join(err, r.keep(ctx, live))
	}
	if live, err = r.reread(ctx, live); err != nil {
		return ctrl.Result{}, err
	}
	adopted, err := r.adopt(ctx, live, mappings)
	if err != nil {
		return ctrl.Result{}, err
	}
	if adopted.pending {
		// The new mappings' events bring us back once the cache has them;
		// the requeue is only a safety net.
		return ctrl.Result{RequeueAfter: time.Second}, nil
	}
	if err := r.protectMappings(ctx, mappings); err != nil {
		return ctrl.Result{}, err
	}

	applied, err := r.appliedEntries(ctx, live)
	if err != nil {
		return ctrl.Result{}, err
	}
	rendering := liveMappings(mappings)
	// Entries too large to fit hold back only themselves: the others,
	// revocations included, are still written, and what is applied keeps
	// its place.
	resolution, rendered, renderErr := awsauth.RenderFitted(awsauth.Resolve(renderInputs(rendering)), applied)
	if live, err = r.reread(ctx, live); err != nil {
		return ctrl.Result{}, err
	}
	result := applyResult{renderErr: renderErr}
	if renderErr == nil {
		result.wipe = r.checkWipe(ctx, live, applied, resolution.Entries, rendered.Data, adopted.held)
	}
	switch {
	case renderErr != nil || result.wipe != nil:
		if err := r.keep(ctx, live); err != nil {
			return ctrl.Result{}, err
		}
		result.served = servedEntries(live)
	default:
		if err := r.apply(ctx, live, rendered.Data); err != nil {
			r.reportApplyFailure(live, err)
			return ctrl.Result{}, err
		}
		result.served = resolution.Entries
		// aws-auth is right now; a failure below is retried, but must not
		// keep the mappings from saying so.
		return ctrl.Result{}, errors.Join(
			r.saveBackup(ctx, rendered.Data),
			r.releaseMappings(ctx, mappings),
			r.reportStatus(ctx, mappings, resolution, result),
		)
	}
	return ctrl.Result{}, r.reportStatus(ctx, mappings, resolution, result)
}

// liveAWSAuth reads aws-auth from the API server. Nobody can use the
// cluster while it is missing, so a missing one comes back at once with
// the data last applied, before the mappings are even read, and the
// outage does not grow with their number; the render follows as over any
// live aws-auth. It is nil only when there is nothing to restore it from.
func (r *AWSAuthReconciler) liveAWSAuth(ctx context.Context) (*corev1.ConfigMap, error) {
	r.awsAuthChanged.Store(false) // the read below sees every change until now
	live, err := r.getAWSAuth(ctx)
	if err != nil || live != nil {
		return live, err
	}
	live, err = r.restoreLastApplied(ctx)
	if err != nil {
		r.reportApplyFailure(nil, err)
	}
	return live, err
}

// reread reads aws-auth again if an event said it changed since live was
// read: reading thousands of mappings and rendering them takes a tenth of
// a second, and a deleted aws-auth must not wait for it.
func (r *AWSAuthReconciler) reread(ctx context.Context, live *corev1.ConfigMap) (*corev1.ConfigMap, error) {
	if !r.awsAuthChanged.Load() {
		return live, nil
	}
	return r.liveAWSAuth(ctx)
}

// applyResult is what the reconcile did, for the mappings' status.
type applyResult struct {
	renderErr error
	wipe      *awsauth.Wipe
	// served are the entries aws-auth holds now.
	served []awsauth.Entry
}

func (r *AWSAuthReconciler) getAWSAuth(ctx context.Context) (*corev1.ConfigMap, error) {
	live := &corev1.ConfigMap{}
	err := r.APIReader.Get(ctx, managed.AWSAuthKey, live)
	switch {
	case apierrors.IsNotFound(err):
		awsAuthPresent.Set(0)
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("reading aws-auth: %w", err)
	}
	awsAuthPresent.Set(1)
	return live, nil
}

func servedEntries(live *corev1.ConfigMap) []awsauth.Entry {
	if live == nil {
		return nil
	}
	entries, _ := awsauth.Parse(live.Data)
	return entries
}

// crdUnusable says why mappings cannot be rendered now: the CRD is missing,
// not yet established, or being deleted (which deletes every mapping, and
// must not empty aws-auth).
func (r *AWSAuthReconciler) crdUnusable(ctx context.Context) (string, error) {
	crd := &apiextensionsv1.CustomResourceDefinition{}
	// From the cache: the CRD is watched, so a change to it brings us back;
	// a round trip here would only delay healing aws-auth.
	err := r.Client.Get(ctx, client.ObjectKey{Name: managed.CRDName}, crd)
	switch {
	case apierrors.IsNotFound(err):
		return "the IAMIdentityMapping CRD is not installed", nil
	case err != nil:
		return "", fmt.Errorf("reading the IAMIdentityMapping CRD: %w", err)
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

// holdWithoutCRD says that aws-auth is kept because no mapping can be read.
func (r *AWSAuthReconciler) holdWithoutCRD(ctx context.Context, live *corev1.ConfigMap, why string) {
	ctrl.LoggerFrom(ctx).Info("Keeping aws-auth as it is", "reason", why)
	blockedTotal.WithLabelValues(reasonCRDUnusable).Inc()
	r.Recorder.Eventf(awsAuthOrReference(live), nil, corev1.EventTypeWarning, iamv1alpha1.ReasonBlocked, "Apply",
		"Kept aws-auth as it is (or restored it from the backup): %s", why)
}

// reportApplyFailure warns of a write of aws-auth that failed for a reason
// other than a lost race.
func (r *AWSAuthReconciler) reportApplyFailure(live *corev1.ConfigMap, err error) {
	if !lostRace(err) {
		r.Recorder.Eventf(awsAuthOrReference(live), nil, corev1.EventTypeWarning, "ApplyFailed", "Apply",
			"Writing aws-auth failed; retrying with backoff: %.600s", err.Error())
	}
}

// lostRace tells a write that failed because aws-auth changed meanwhile
// (someone else wrote it; the event of that write brings us back) from a
// real failure worth a Warning, such as an admission policy refusing it.
func lostRace(err error) bool {
	return apierrors.IsConflict(err) || apierrors.IsNotFound(err) || apierrors.IsAlreadyExists(err)
}

// awsAuthOrReference is what events are about: the live aws-auth, or a
// reference to it when it does not exist.
func awsAuthOrReference(live *corev1.ConfigMap) *corev1.ConfigMap {
	if live != nil {
		return live
	}
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: managed.AWSAuthKey.Namespace, Name: managed.AWSAuthKey.Name}}
}

// listMappings reads mappings from the cache, bounded in time: a cache
// that cannot sync (the CRD went away meanwhile) must not stall the one
// worker that keeps aws-auth alive.
func (r *AWSAuthReconciler) listMappings(ctx context.Context) ([]iamv1alpha1.IAMIdentityMapping, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var list iamv1alpha1.IAMIdentityMappingList
	if err := r.Client.List(ctx, &list); err != nil {
		return nil, fmt.Errorf("listing IAMIdentityMappings: %w", err)
	}
	return list.Items, nil
}

// liveMappings drops mappings that are being deleted: their entries leave
// aws-auth.
func liveMappings(items []iamv1alpha1.IAMIdentityMapping) []*iamv1alpha1.IAMIdentityMapping {
	live := make([]*iamv1alpha1.IAMIdentityMapping, 0, len(items))
	for i := range items {
		if items[i].DeletionTimestamp.IsZero() {
			live = append(live, &items[i])
		}
	}
	return live
}

func renderInputs(mappings []*iamv1alpha1.IAMIdentityMapping) []awsauth.Mapping {
	inputs := make([]awsauth.Mapping, len(mappings))
	for i, m := range mappings {
		inputs[i] = managed.MappingInput(m)
	}
	return inputs
}
