// Package controllers holds the one reconciler of aws-auth-guardian: it
// keeps kube-system/aws-auth equal to the render of all IAMIdentityMappings.
package controllers

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
)

// AWSAuthKey is the ConfigMap this operator manages, and the one reconcile
// key: every event about it or about any mapping leads here.
var AWSAuthKey = types.NamespacedName{Namespace: "kube-system", Name: "aws-auth"}

// ConfigMapMode says how aws-auth is written.
type ConfigMapMode string

const (
	// Immutable data: every change is a replace (delete, then create).
	Immutable ConfigMapMode = "immutable"
	// Mutable data, updated in place, for clusters where EKS itself must
	// still write aws-auth.
	Mutable ConfigMapMode = "mutable"
)

// CacheOptions limits the manager's cache to what the reconciler reads: of
// all ConfigMaps, only aws-auth is ever cached.
func CacheOptions() cache.Options {
	return cache.Options{
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&corev1.ConfigMap{}: {
				Namespaces: map[string]cache.Config{AWSAuthKey.Namespace: {}},
				Field:      fields.OneTermEqualSelector("metadata.name", AWSAuthKey.Name),
			},
		},
	}
}

// AWSAuthReconciler renders IAMIdentityMappings into aws-auth.
type AWSAuthReconciler struct {
	// Client reads mappings from the cache and writes everything.
	Client client.Client
	// APIReader reads aws-auth from the API server: decisions to delete or
	// replace it must not rest on a cache that may lag our own last write.
	APIReader client.Reader
	Recorder  events.EventRecorder
	Mode      ConfigMapMode
	// BatchDelay lets a burst of mapping changes (a GitOps sync) land as
	// one write. Changes to aws-auth itself are never delayed.
	BatchDelay time.Duration
}

// +kubebuilder:rbac:groups=iam.aws-auth-guardian.dev,resources=iamidentitymappings,verbs=get;list;watch
// +kubebuilder:rbac:groups=iam.aws-auth-guardian.dev,resources=iamidentitymappings/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",namespace=kube-system,resources=configmaps,resourceNames=aws-auth,verbs=get;list;watch;update;patch;delete
// +kubebuilder:rbac:groups="",namespace=kube-system,resources=configmaps,verbs=create
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// SetupWithManager registers the reconciler and its watches.
func (r *AWSAuthReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("aws-auth").
		Watches(&iamv1alpha1.IAMIdentityMapping{}, enqueueAWSAuth(r.BatchDelay),
			// Our own status writes do not change the generation, so they cause no work.
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&corev1.ConfigMap{}, enqueueAWSAuth(0)).
		Complete(r)
}

// enqueueAWSAuth maps every event to the one key, after delay.
func enqueueAWSAuth(delay time.Duration) handler.EventHandler {
	add := func(q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		q.AddAfter(reconcile.Request{NamespacedName: AWSAuthKey}, delay)
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

// Reconcile renders all mappings, brings aws-auth to the render, then
// reports on each mapping.
func (r *AWSAuthReconciler) Reconcile(ctx context.Context, _ ctrl.Request) (ctrl.Result, error) {
	var list iamv1alpha1.IAMIdentityMappingList
	if err := r.Client.List(ctx, &list); err != nil {
		return ctrl.Result{}, fmt.Errorf("listing IAMIdentityMappings: %w", err)
	}
	mappings := liveMappings(list.Items)
	resolution := awsauth.Resolve(renderInputs(mappings))
	data, renderErr := awsauth.Render(resolution.Entries)
	if renderErr == nil {
		if err := r.apply(ctx, data, len(resolution.Entries)); err != nil {
			return ctrl.Result{}, err
		}
	}
	return ctrl.Result{}, r.reportStatus(ctx, mappings, resolution, renderErr)
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
		inputs[i] = RenderInput(m)
	}
	return inputs
}

// RenderInput is what the render needs of a mapping.
func RenderInput(m *iamv1alpha1.IAMIdentityMapping) awsauth.Mapping {
	groups := make([]string, len(m.Spec.Groups))
	for i, g := range m.Spec.Groups {
		groups[i] = string(g)
	}
	return awsauth.Mapping{
		Name:      m.Name,
		Created:   m.CreationTimestamp.Time,
		ARN:       m.Spec.ARN,
		Username:  string(m.Spec.Username),
		Groups:    groups,
		AccountID: m.Spec.AccountID,
	}
}
