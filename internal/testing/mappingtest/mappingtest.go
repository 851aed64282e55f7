// Package mappingtest builds IAMIdentityMapping objects for the envtest
// suites, the chaos suite and the bench, the way a person writes a spec:
// Mapping("admins", WithARN(...), WithGroups(...)). One set of builders, so
// that the three agree on what a mapping of a given shape is.
// (internal/awsauth/awsauthtest builds the render's input, awsauth.Mapping,
// for the pure tests; these are the API objects a cluster holds.)
package mappingtest

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
)

// Option sets one field of a mapping's spec.
type Option func(*iamv1alpha1.IAMIdentityMapping)

// Mapping builds a cluster-scoped IAMIdentityMapping named name.
func Mapping(name string, opts ...Option) *iamv1alpha1.IAMIdentityMapping {
	m := &iamv1alpha1.IAMIdentityMapping{ObjectMeta: metav1.ObjectMeta{Name: name}}
	for _, o := range opts {
		o(m)
	}
	return m
}

// WithARN sets the role or user ARN.
func WithARN(arn string) Option {
	return func(m *iamv1alpha1.IAMIdentityMapping) { m.Spec.ARN = arn }
}

// WithUsername sets the Kubernetes username the ARN maps to.
func WithUsername(u string) Option {
	return func(m *iamv1alpha1.IAMIdentityMapping) { m.Spec.Username = iamv1alpha1.IdentityName(u) }
}

// WithGroups replaces the Kubernetes groups; none leaves them nil, as an
// object read back from the API server has them.
func WithGroups(groups ...string) Option {
	return func(m *iamv1alpha1.IAMIdentityMapping) {
		m.Spec.Groups = nil
		for _, g := range groups {
			m.Spec.Groups = append(m.Spec.Groups, iamv1alpha1.IdentityName(g))
		}
	}
}

// WithAccount makes the mapping a mapAccounts entry for the account ID.
func WithAccount(id string) Option {
	return func(m *iamv1alpha1.IAMIdentityMapping) { m.Spec.AccountID = id }
}

// Role is an ordinary role mapping: the username is the mapping's name and
// the session name, as teams usually write it.
func Role(name, arn string, groups ...string) *iamv1alpha1.IAMIdentityMapping {
	return Mapping(name, WithARN(arn), WithUsername(name+":{{SessionName}}"), WithGroups(groups...))
}
