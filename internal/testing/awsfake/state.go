package awsfake

import (
	"maps"
	"slices"
	"strings"
	"time"
)

// The cluster authentication modes (AccessConfig.authenticationMode).
const (
	ModeConfigMap       = "CONFIG_MAP"
	ModeAPIAndConfigMap = "API_AND_CONFIG_MAP"
	ModeAPI             = "API"
)

// The access entry types CreateAccessEntry accepts.
const (
	TypeStandard      = "STANDARD"
	TypeEC2Linux      = "EC2_LINUX"
	TypeEC2Windows    = "EC2_WINDOWS"
	TypeFargateLinux  = "FARGATE_LINUX"
	TypeHybridLinux   = "HYBRID_LINUX"
	TypeHyperpodLinux = "HYPERPOD_LINUX"
	TypeEC2           = "EC2"
)

// The access scope types of an associated access policy.
const (
	ScopeCluster   = "cluster"
	ScopeNamespace = "namespace"
)

// Cluster is an EKS cluster as the fake holds it.
type Cluster struct {
	Name string
	// AuthenticationMode is one of the Mode constants; SeedCluster defaults
	// it to ModeAPIAndConfigMap.
	AuthenticationMode string
	// Version is the Kubernetes version DescribeCluster reports; SeedCluster
	// defaults it to "1.33".
	Version string
	Tags    map[string]string
	// ARN is set by the fake.
	ARN string
}

// AccessEntry is an access entry with its associated access policies, as
// Snapshot returns it and SeedEntry and ModifyEntry take it.
type AccessEntry struct {
	PrincipalARN string
	// Type is one of the Type constants; empty means TypeStandard.
	Type string
	// Username is set by the fake when left empty, as EKS does.
	Username         string
	KubernetesGroups []string
	Tags             map[string]string
	// Policies are kept sorted by PolicyARN.
	Policies []AssociatedPolicy

	// ARN, CreatedAt and ModifiedAt are set by the fake.
	ARN        string
	CreatedAt  time.Time
	ModifiedAt time.Time
}

// AssociatedPolicy is an access policy associated with an access entry.
type AssociatedPolicy struct {
	PolicyARN string
	Scope     AccessScope
	// AssociatedAt and ModifiedAt are set by the fake.
	AssociatedAt time.Time
	ModifiedAt   time.Time
}

// AccessScope is where an associated access policy applies.
type AccessScope struct {
	// Type is ScopeCluster or ScopeNamespace.
	Type       string
	Namespaces []string
}

// PolicyARN returns the ARN of the EKS access policy with the given name,
// such as "AmazonEKSViewPolicy".
func PolicyARN(name string) string {
	return "arn:aws:eks::aws:cluster-access-policy/" + name
}

// accessPolicies is the catalogue ListAccessPolicies returns, sorted by name
// as the service returns it: the policies the access policy reference
// documents for customer principals
// (https://docs.aws.amazon.com/eks/latest/userguide/access-policy-permissions.html).
// The ones documented as reserved to service-linked roles are left out,
// since access entries refuse service-linked roles anyway.
var accessPolicies = []string{
	"AmazonEKSAdminPolicy",
	"AmazonEKSAdminViewPolicy",
	"AmazonEKSAutoNodePolicy",
	"AmazonEKSClusterAdminPolicy",
	"AmazonEKSEditPolicy",
	"AmazonEKSSecretReaderPolicy",
	"AmazonEKSViewPolicy",
}

func knownPolicy(arn string) bool {
	return slices.ContainsFunc(accessPolicies, func(name string) bool { return PolicyARN(name) == arn })
}

// cluster is the fake's record of a cluster; entries are keyed by principal
// ARN, the key every access entry operation names them by.
type cluster struct {
	Cluster
	createdAt time.Time
	entries   map[string]*entry
	updates   map[string]update
}

// entry is an access entry plus the moment it becomes visible to List and
// Describe, which the eventual consistency fault pushes into the future.
type entry struct {
	AccessEntry
	visibleAt time.Time
}

// update is the record UpdateClusterConfig leaves for DescribeUpdate.
type update struct {
	id        string
	mode      string
	createdAt time.Time
}

// principal is an IAM role or user the fake's IAM knows.
type principal struct {
	arn       parsedARN
	id        string
	createdAt time.Time
}

func (e *entry) policy(arn string) (int, bool) {
	return slices.BinarySearchFunc(e.Policies, arn, func(p AssociatedPolicy, arn string) int {
		return strings.Compare(p.PolicyARN, arn)
	})
}

func (c *cluster) sortedEntries() []*entry {
	return slices.SortedFunc(maps.Values(c.entries), func(a, b *entry) int {
		return strings.Compare(a.PrincipalARN, b.PrincipalARN)
	})
}

// copyEntry deep-copies an entry so that callers outside the lock can keep
// it without racing the server.
func copyEntry(e AccessEntry) AccessEntry {
	e.KubernetesGroups = slices.Clone(e.KubernetesGroups)
	e.Tags = maps.Clone(e.Tags)
	e.Policies = slices.Clone(e.Policies)
	for i := range e.Policies {
		e.Policies[i].Scope.Namespaces = slices.Clone(e.Policies[i].Scope.Namespaces)
	}
	return e
}
