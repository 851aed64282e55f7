// Package managed is the shape of the aws-auth ConfigMap as aws-auth-guardian
// writes it: where it lives, how its data is written (immutable or mutable),
// the marks the operator puts on it, and what the render needs of a mapping.
// It is pure and a leaf: the reconciler, the command line, the tests and the
// bench all import it, so there is one definition of each.
package managed

import (
	"maps"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
)

// AWSAuthKey is the ConfigMap the operator manages.
var AWSAuthKey = types.NamespacedName{Namespace: "kube-system", Name: "aws-auth"}

// BackupName is the ConfigMap, in the operator's namespace, that holds the
// data last applied to aws-auth, so that aws-auth can be recreated when the
// CRD or every mapping is gone.
const BackupName = "aws-auth-backup"

// CRDName is the IAMIdentityMapping CRD.
const CRDName = "iamidentitymappings.iam.aws-auth-guardian.dev"

// Mode says how aws-auth's data is written.
type Mode string

const (
	// Immutable data: every change of data is a replace (delete, then create).
	Immutable Mode = "immutable"
	// Mutable data, updated in place, for clusters where EKS itself must
	// still write aws-auth.
	Mutable Mode = "mutable"
)

// Set puts on cm everything the operator owns: the data, the mode, the
// label, the hash annotation and the finalizer. Other labels, annotations
// and finalizers are left alone. There are no ownerReferences, ever:
// garbage collection of aws-auth is the outage this project prevents.
func Set(cm *corev1.ConfigMap, r awsauth.Rendered, mode Mode) {
	cm.Data = maps.Clone(r.Data)
	cm.BinaryData = nil
	cm.Immutable = nil
	if mode == Immutable {
		cm.Immutable = ptr.To(true)
	}
	if cm.Labels == nil {
		cm.Labels = map[string]string{}
	}
	cm.Labels[iamv1alpha1.ManagedByLabel] = iamv1alpha1.ManagedByValue
	if cm.Annotations == nil {
		cm.Annotations = map[string]string{}
	}
	cm.Annotations[iamv1alpha1.DataHashAnnotation] = r.Hash
	// aws-auth must never be part of an Argo CD application: its immutable
	// data needs Replace and Force to sync, and a prune would lock the
	// cluster out. These tell Argo CD to leave it alone if an application
	// ever sees it, and the tracking marks are dropped so none claims it.
	maps.Copy(cm.Annotations, argoCDAnnotations)
	for _, label := range argoCDTrackingLabels {
		delete(cm.Labels, label)
	}
	delete(cm.Annotations, argoCDTrackingAnnotation)
	controllerutil.AddFinalizer(cm, iamv1alpha1.ProtectionFinalizer)
}

var (
	argoCDAnnotations = map[string]string{
		"argocd.argoproj.io/compare-options": "IgnoreExtraneous",
		"argocd.argoproj.io/sync-options":    "Prune=false,Delete=false",
	}
	// Argo CD tracks by the label app.kubernetes.io/instance (its default),
	// by argocd.argoproj.io/instance, or by the annotation below.
	argoCDTrackingLabels     = []string{"app.kubernetes.io/instance", "argocd.argoproj.io/instance"}
	argoCDTrackingAnnotation = "argocd.argoproj.io/tracking-id"
)

// IsManaged says whether cm carries the operator's label.
func IsManaged(cm *corev1.ConfigMap) bool {
	return cm.Labels[iamv1alpha1.ManagedByLabel] == iamv1alpha1.ManagedByValue
}

// MappingInput is what the render needs of a mapping.
func MappingInput(m *iamv1alpha1.IAMIdentityMapping) awsauth.Mapping {
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
