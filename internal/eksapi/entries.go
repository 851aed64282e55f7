package eksapi

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eks"
	"github.com/aws/aws-sdk-go-v2/service/eks/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
)

// pageSize is the largest page ListAccessEntries and
// ListAssociatedAccessPolicies give, so that a resync of N entries takes
// ceil(N/100) calls.
const pageSize = 100

// The access scope types of an associated access policy.
const (
	ScopeCluster   = "cluster"
	ScopeNamespace = "namespace"
)

// Entry is an access entry with its associated access policies.
type Entry struct {
	PrincipalARN string
	// Type is STANDARD, EC2_LINUX, ...; empty on create means STANDARD.
	Type string
	// Username is the Kubernetes username; empty on create lets EKS pick it.
	Username string
	Groups   []string
	Tags     map[string]string
	// Policies are set by DescribeEntry; CreateEntry ignores them, since
	// EKS associates policies one call at a time (see AssociatePolicy).
	Policies []Policy
	// ARN is the entry's own ARN, set by EKS, which TagEntry takes.
	ARN string
}

// Policy is an access policy associated with an entry.
type Policy struct {
	PolicyARN string
	Scope     Scope
}

// Scope is where an associated access policy applies: the whole cluster,
// or the namespaces listed.
type Scope struct {
	// Type is ScopeCluster or ScopeNamespace.
	Type       string
	Namespaces []string
}

// AuthenticationMode is the cluster's authentication mode: CONFIG_MAP,
// API_AND_CONFIG_MAP or API. It is empty if EKS reports no access
// configuration.
func (c *Client) AuthenticationMode(ctx context.Context) (string, error) {
	out, err := c.eks.DescribeCluster(ctx, &eks.DescribeClusterInput{Name: aws.String(c.cluster)})
	if err != nil {
		return "", fmt.Errorf("describing cluster %s: %w", c.cluster, err)
	}
	if out.Cluster == nil || out.Cluster.AccessConfig == nil {
		return "", nil
	}
	return string(out.Cluster.AccessConfig.AuthenticationMode), nil
}

// ListEntries lists the principal ARNs of the cluster's access entries.
func (c *Client) ListEntries(ctx context.Context) ([]string, error) {
	var arns []string
	pages := eks.NewListAccessEntriesPaginator(c.eks, &eks.ListAccessEntriesInput{
		ClusterName: aws.String(c.cluster),
		MaxResults:  aws.Int32(pageSize),
	})
	for pages.HasMorePages() {
		out, err := pages.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing the access entries of %s: %w", c.cluster, err)
		}
		arns = append(arns, out.AccessEntries...)
	}
	return arns, nil
}

// DescribeEntry returns an access entry with its tags and its associated
// access policies.
func (c *Client) DescribeEntry(ctx context.Context, principalARN string) (Entry, error) {
	out, err := c.eks.DescribeAccessEntry(ctx, &eks.DescribeAccessEntryInput{
		ClusterName:  aws.String(c.cluster),
		PrincipalArn: aws.String(principalARN),
	})
	if err != nil {
		return Entry{}, fmt.Errorf("describing the access entry of %s: %w", principalARN, err)
	}
	e := fromEntry(out.AccessEntry)
	pages := eks.NewListAssociatedAccessPoliciesPaginator(c.eks, &eks.ListAssociatedAccessPoliciesInput{
		ClusterName:  aws.String(c.cluster),
		PrincipalArn: aws.String(principalARN),
		MaxResults:   aws.Int32(pageSize),
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return Entry{}, fmt.Errorf("listing the access policies of %s: %w", principalARN, err)
		}
		for _, p := range page.AssociatedAccessPolicies {
			e.Policies = append(e.Policies, fromPolicy(p))
		}
	}
	return e, nil
}

// CreateEntry creates an access entry with its tags and returns it as EKS
// made it, with its ARN and the username EKS picked if none was given.
func (c *Client) CreateEntry(ctx context.Context, e Entry) (Entry, error) {
	in := &eks.CreateAccessEntryInput{
		ClusterName:      aws.String(c.cluster),
		PrincipalArn:     aws.String(e.PrincipalARN),
		KubernetesGroups: e.Groups,
		Tags:             e.Tags,
	}
	if e.Type != "" {
		in.Type = aws.String(e.Type)
	}
	if e.Username != "" {
		in.Username = aws.String(e.Username)
	}
	out, err := c.eks.CreateAccessEntry(ctx, in)
	if err != nil {
		return Entry{}, fmt.Errorf("creating the access entry of %s: %w", e.PrincipalARN, err)
	}
	return fromEntry(out.AccessEntry), nil
}

// UpdateEntry sets the Kubernetes groups of an access entry to groups (nil
// clears them) and its username to username, unless username is empty:
// EKS keeps the current username then, as an entry always has one.
func (c *Client) UpdateEntry(ctx context.Context, principalARN, username string, groups []string) error {
	in := &eks.UpdateAccessEntryInput{
		ClusterName:  aws.String(c.cluster),
		PrincipalArn: aws.String(principalARN),
		// Non-nil, so that the SDK sends an empty list: a member left out
		// keeps its value.
		KubernetesGroups: append([]string{}, groups...),
	}
	if username != "" {
		in.Username = aws.String(username)
	}
	if _, err := c.eks.UpdateAccessEntry(ctx, in); err != nil {
		return fmt.Errorf("updating the access entry of %s: %w", principalARN, err)
	}
	return nil
}

// DeleteEntry deletes an access entry and, with it, its associated access
// policies.
func (c *Client) DeleteEntry(ctx context.Context, principalARN string) error {
	_, err := c.eks.DeleteAccessEntry(ctx, &eks.DeleteAccessEntryInput{
		ClusterName:  aws.String(c.cluster),
		PrincipalArn: aws.String(principalARN),
	})
	if err != nil {
		return fmt.Errorf("deleting the access entry of %s: %w", principalARN, err)
	}
	return nil
}

// TagEntry adds tags to an access entry, named by its own ARN (Entry.ARN)
// as TagResource names it, and overwrites the values of keys it has.
func (c *Client) TagEntry(ctx context.Context, entryARN string, tags map[string]string) error {
	_, err := c.eks.TagResource(ctx, &eks.TagResourceInput{ResourceArn: aws.String(entryARN), Tags: tags})
	if err != nil {
		return fmt.Errorf("tagging access entry %s: %w", entryARN, err)
	}
	return nil
}

// UntagEntry removes the tags of keys from an access entry.
func (c *Client) UntagEntry(ctx context.Context, entryARN string, keys []string) error {
	_, err := c.eks.UntagResource(ctx, &eks.UntagResourceInput{ResourceArn: aws.String(entryARN), TagKeys: keys})
	if err != nil {
		return fmt.Errorf("untagging access entry %s: %w", entryARN, err)
	}
	return nil
}

// AssociatePolicy associates an access policy with an access entry, or
// changes the scope of one already associated.
func (c *Client) AssociatePolicy(ctx context.Context, principalARN, policyARN string, scope Scope) error {
	_, err := c.eks.AssociateAccessPolicy(ctx, &eks.AssociateAccessPolicyInput{
		ClusterName:  aws.String(c.cluster),
		PrincipalArn: aws.String(principalARN),
		PolicyArn:    aws.String(policyARN),
		AccessScope:  &types.AccessScope{Type: types.AccessScopeType(scope.Type), Namespaces: scope.Namespaces},
	})
	if err != nil {
		return fmt.Errorf("associating %s with the access entry of %s: %w", policyARN, principalARN, err)
	}
	return nil
}

// DisassociatePolicy removes an access policy from an access entry.
func (c *Client) DisassociatePolicy(ctx context.Context, principalARN, policyARN string) error {
	_, err := c.eks.DisassociateAccessPolicy(ctx, &eks.DisassociateAccessPolicyInput{
		ClusterName:  aws.String(c.cluster),
		PrincipalArn: aws.String(principalARN),
		PolicyArn:    aws.String(policyARN),
	})
	if err != nil {
		return fmt.Errorf("disassociating %s from the access entry of %s: %w", policyARN, principalARN, err)
	}
	return nil
}

// RoleARN returns the ARN of the IAM role named roleName, path included,
// from a cache: found roles are kept 10 minutes, missing ones (IsNotFound)
// one minute.
func (c *Client) RoleARN(ctx context.Context, roleName string) (string, error) {
	if r, ok := c.roles.get(roleName); ok {
		return r.arn, r.err
	}
	out, err := c.iam.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String(roleName)})
	switch {
	case IsNotFound(err):
		err = fmt.Errorf("getting IAM role %s: %w", roleName, err)
		c.roles.put(roleName, cachedRole{err: err}, missingTTL)
		return "", err
	case err != nil:
		return "", fmt.Errorf("getting IAM role %s: %w", roleName, err)
	}
	arn := aws.ToString(out.Role.Arn)
	c.roles.put(roleName, cachedRole{arn: arn}, roleTTL)
	return arn, nil
}

func fromEntry(e *types.AccessEntry) Entry {
	if e == nil {
		return Entry{}
	}
	return Entry{
		PrincipalARN: aws.ToString(e.PrincipalArn),
		Type:         aws.ToString(e.Type),
		Username:     aws.ToString(e.Username),
		Groups:       slices.Clone(e.KubernetesGroups),
		Tags:         maps.Clone(e.Tags),
		ARN:          aws.ToString(e.AccessEntryArn),
	}
}

func fromPolicy(p types.AssociatedAccessPolicy) Policy {
	out := Policy{PolicyARN: aws.ToString(p.PolicyArn)}
	if p.AccessScope != nil {
		out.Scope = Scope{Type: string(p.AccessScope.Type), Namespaces: slices.Clone(p.AccessScope.Namespaces)}
	}
	return out
}
