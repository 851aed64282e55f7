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

func WithARN(arn string) Option     { return func(m *awsauth.Mapping) { m.ARN = arn } }
func WithUsername(u string) Option  { return func(m *awsauth.Mapping) { m.Username = u } }
func WithGroups(g ...string) Option { return func(m *awsauth.Mapping) { m.Groups = g } }
func WithAccount(id string) Option  { return func(m *awsauth.Mapping) { m.AccountID = id } }

// CreatedAfter dates the mapping d after Epoch.
func CreatedAfter(d time.Duration) Option {
	return func(m *awsauth.Mapping) { m.Created = Epoch.Add(d) }
}
