// Package awsauthtest builds awsauth.Mappings for tests, the way a person
// writes a spec: Mapping("admins", WithARN(...), WithGroups(...)).
package awsauthtest

import (
	"time"

	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
)

// Epoch is the creation time of every mapping a test does not date itself.
var Epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// Option sets one field of a mapping.
type Option func(*awsauth.Mapping)

// Mapping builds a mapping created at Epoch.
func Mapping(name string, opts ...Option) awsauth.Mapping {
	m := awsauth.Mapping{Name: name, Created: Epoch}
	for _, o := range opts {
		o(&m)
	}
	return m
}

// WithARN sets the mapping's role or user ARN.
func WithARN(arn string) Option { return func(m *awsauth.Mapping) { m.ARN = arn } }

// WithUsername sets the Kubernetes username the ARN maps to.
func WithUsername(u string) Option { return func(m *awsauth.Mapping) { m.Username = u } }

// WithGroups sets the Kubernetes groups the ARN maps to.
func WithGroups(g ...string) Option { return func(m *awsauth.Mapping) { m.Groups = g } }

// WithAccount makes the mapping a mapAccounts entry for the account ID.
func WithAccount(id string) Option { return func(m *awsauth.Mapping) { m.AccountID = id } }

// CreatedAfter dates the mapping d after Epoch.
func CreatedAfter(d time.Duration) Option {
	return func(m *awsauth.Mapping) { m.Created = Epoch.Add(d) }
}
