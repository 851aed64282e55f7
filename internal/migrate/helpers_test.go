package migrate_test

import (
	"context"
	"errors"
	"time"

	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/accessentry"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/managed"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/migrate"
)

// The expected values below are written out by hand from the README's
// translation table, not derived from the package.
const (
	acct            = "111122223333"
	adminsRole      = "arn:aws:iam::" + acct + ":role/admins"
	adminsWithPath  = "arn:aws:iam::" + acct + ":role/teams/Admins"
	pathRole        = "arn:aws:iam::" + acct + ":role/teams/deployer"
	nodeRole        = "arn:aws:iam::" + acct + ":role/eks/nodes"
	userARN         = "arn:aws:iam::" + acct + ":user/ops/jane"
	creatorRole     = "arn:aws:iam::" + acct + ":role/creator"
	clusterAdminARN = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
	viewARN         = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy"
	ec2Node         = "system:node:{{EC2PrivateDNSName}}"
	sessionNode     = "system:node:{{SessionName}}"
)

type option func(*iamv1alpha1.IAMIdentityMapping)

// mapping is an IAMIdentityMapping as the operator lists it, or as
// `manager migrate` adopts it from aws-auth.
func mapping(name string, opts ...option) *iamv1alpha1.IAMIdentityMapping {
	m := &iamv1alpha1.IAMIdentityMapping{ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))}}
	for _, o := range opts {
		o(m)
	}
	return m
}

func withARN(arn string) option {
	return func(m *iamv1alpha1.IAMIdentityMapping) { m.Spec.ARN = arn }
}

func withAccount(id string) option {
	return func(m *iamv1alpha1.IAMIdentityMapping) { m.Spec.AccountID = id }
}

func withUsername(u string) option {
	return func(m *iamv1alpha1.IAMIdentityMapping) { m.Spec.Username = iamv1alpha1.IdentityName(u) }
}

func withGroups(groups ...string) option {
	return func(m *iamv1alpha1.IAMIdentityMapping) {
		for _, g := range groups {
			m.Spec.Groups = append(m.Spec.Groups, iamv1alpha1.IdentityName(g))
		}
	}
}

func withType(t iamv1alpha1.AccessEntryType) option {
	return func(m *iamv1alpha1.IAMIdentityMapping) { m.Spec.AccessEntryType = t }
}

func withPolicy(name string, namespaces ...string) option {
	return func(m *iamv1alpha1.IAMIdentityMapping) {
		p := iamv1alpha1.AccessPolicy{Policy: name}
		for _, ns := range namespaces {
			p.Namespaces = append(p.Namespaces, iamv1alpha1.AccessPolicyNamespace(ns))
		}
		m.Spec.AccessPolicies = append(m.Spec.AccessPolicies, p)
	}
}

func createdAt(ts time.Time) option {
	return func(m *iamv1alpha1.IAMIdentityMapping) { m.CreationTimestamp = metav1.NewTime(ts) }
}

// roles is IAM for Desire: the ARN of each role name, path included.
// A name missing is NoSuchEntity; failing makes every lookup fail.
type roles struct {
	arns    map[string]string
	failing bool
}

func (r roles) RoleARN(_ context.Context, name string) (string, error) {
	if r.failing {
		return "", errors.New("getting IAM role " + name + ": throttled")
	}
	if arn, ok := r.arns[name]; ok {
		return arn, nil
	}
	return "", &iamtypes.NoSuchEntityException{Message: new("The role with name " + name + " cannot be found.")}
}

// iam knows the roles of the constants above.
var iam = roles{arns: map[string]string{"admins": adminsWithPath, "creator": creatorRole}}

// grants translates mappings as the operator and migrate do.
func grants(r migrate.Roles, ms ...*iamv1alpha1.IAMIdentityMapping) []migrate.Mapping {
	out := make([]migrate.Mapping, len(ms))
	for i, m := range ms {
		out[i] = migrate.Mapping{Grant: managed.MappingInput(m), Desired: migrate.Desire(context.Background(), m, r)}
	}
	return out
}

// entry is an access entry as EKS holds it.
type entryOption func(*accessentry.Observed)

func entry(arn string, typ iamv1alpha1.AccessEntryType, opts ...entryOption) accessentry.Observed {
	o := accessentry.Observed{Entry: accessentry.Entry{PrincipalARN: arn, Type: typ}, Tags: map[string]string{}}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

func user(name string, groups ...string) entryOption {
	return func(o *accessentry.Observed) { o.Entry.Username, o.Entry.KubernetesGroups = name, groups }
}

func policies(ps ...accessentry.Policy) entryOption {
	return func(o *accessentry.Observed) { o.Entry.Policies = ps }
}

func taggedFor(mapping string) entryOption {
	return func(o *accessentry.Observed) { o.Tags[accessentry.MappingTag] = mapping }
}

// creator is the cluster creator's entry as EKS makes it: untagged, with
// the cluster admin policy on the whole cluster.
var creator = entry(creatorRole, "STANDARD", user("arn:aws:sts::"+acct+":assumed-role/creator/{{SessionName}}"), policies(accessentry.Policy{ARN: clusterAdminARN}))
