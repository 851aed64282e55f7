// Package v1alpha1 contains the IAMIdentityMapping API.
// +kubebuilder:object:generate=true
// +groupName=iam.aws-auth-guardian.dev
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of this API.
	GroupVersion = schema.GroupVersion{Group: "iam.aws-auth-guardian.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the types of this API with a scheme. It uses
	// apimachinery alone, so that importing the API pulls in no controller
	// library.
	SchemeBuilder = runtime.NewSchemeBuilder(func(s *runtime.Scheme) error {
		s.AddKnownTypes(GroupVersion, &IAMIdentityMapping{}, &IAMIdentityMappingList{})
		metav1.AddToGroupVersion(s, GroupVersion)
		return nil
	})

	// AddToScheme adds the types of this API to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
