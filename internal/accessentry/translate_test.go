package accessentry_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	gocmp "github.com/google/go-cmp/cmp"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/accessentry"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
)

// The expected outputs below are written out by hand from the EKS
// documentation, not derived from the package's tables.
const (
	role      = "arn:aws:iam::111122223333:role/admins"
	pathRole  = "arn:aws:iam::111122223333:role/teams/a/admins"
	nodeRole  = "arn:aws:iam::111122223333:role/eks/nodes"
	user      = "arn:aws:iam::111122223333:user/ops/jane"
	ec2Node   = "system:node:{{EC2PrivateDNSName}}"
	otherNode = "system:node:{{SessionName}}"

	viewARN         = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy"
	editARN         = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSEditPolicy"
	clusterAdminARN = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
)

func mapping(arn, username string, groups ...string) awsauth.Mapping {
	return awsauth.Mapping{Name: "m", ARN: arn, Username: username, Groups: groups}
}

func policy(name string, namespaces ...iamv1alpha1.AccessPolicyNamespace) iamv1alpha1.AccessPolicy {
	return iamv1alpha1.AccessPolicy{Policy: name, Namespaces: namespaces}
}

func TestTranslate(t *testing.T) {
	cases := []struct {
		name string
		in   accessentry.Input
		want accessentry.Translation
	}{
		{"a role with a path is used as given",
			accessentry.Input{Mapping: mapping(pathRole, "admin:{{SessionName}}", "viewers", "editors", "viewers")},
			accessentry.Translation{Entry: accessentry.Entry{PrincipalARN: pathRole, Type: "STANDARD", Username: "admin:{{SessionName}}", KubernetesGroups: []string{"editors", "viewers"}}}},
		{"a role without a path asks to be resolved",
			accessentry.Input{Mapping: mapping(role, "admin")},
			accessentry.Translation{Entry: accessentry.Entry{PrincipalARN: role, Type: "STANDARD", Username: "admin"}, ResolveRole: "admins"}},
		{"a resolved role takes IAM's ARN, path and case",
			accessentry.Input{Mapping: mapping(role, "admin"), ResolvedARN: "arn:aws:iam::111122223333:role/teams/a/Admins"},
			accessentry.Translation{Entry: accessentry.Entry{PrincipalARN: "arn:aws:iam::111122223333:role/teams/a/Admins", Type: "STANDARD", Username: "admin"}}},
		{"a user keeps its ARN and path",
			accessentry.Input{Mapping: mapping(user, "jane")},
			accessentry.Translation{Entry: accessentry.Entry{PrincipalARN: user, Type: "STANDARD", Username: "jane"}}},
		{"system:masters becomes the cluster admin policy on the cluster",
			accessentry.Input{Mapping: mapping(pathRole, "admin", "system:masters", "ops")},
			accessentry.Translation{Entry: accessentry.Entry{PrincipalARN: pathRole, Type: "STANDARD", Username: "admin", KubernetesGroups: []string{"ops"},
				Policies: []accessentry.Policy{{ARN: clusterAdminARN}}}}},
		{"system:masters next to the same policy at cluster scope",
			accessentry.Input{Mapping: mapping(pathRole, "admin", "system:masters"), Policies: []iamv1alpha1.AccessPolicy{policy(clusterAdminARN), policy("AmazonEKSViewPolicy", "a")}},
			accessentry.Translation{Entry: accessentry.Entry{PrincipalARN: pathRole, Type: "STANDARD", Username: "admin",
				Policies: []accessentry.Policy{{ARN: clusterAdminARN}, {ARN: viewARN, Namespaces: []string{"a"}}}}}},
		{"policies by name and by ARN, namespaces and a wildcard",
			accessentry.Input{Mapping: mapping(pathRole, "dev"), Policies: []iamv1alpha1.AccessPolicy{
				policy("AmazonEKSViewPolicy", "team-b", "team-a", "dev-*"), policy(editARN)}},
			accessentry.Translation{Entry: accessentry.Entry{PrincipalARN: pathRole, Type: "STANDARD", Username: "dev",
				Policies: []accessentry.Policy{{ARN: editARN}, {ARN: viewARN, Namespaces: []string{"dev-*", "team-a", "team-b"}}}}}},
		{"a policy ARN AWS added later",
			accessentry.Input{Mapping: mapping(pathRole, "dev"), Policies: []iamv1alpha1.AccessPolicy{policy("arn:aws:eks::aws:cluster-access-policy/AmazonEKSFuturePolicy")}},
			accessentry.Translation{Entry: accessentry.Entry{PrincipalARN: pathRole, Type: "STANDARD", Username: "dev",
				Policies: []accessentry.Policy{{ARN: "arn:aws:eks::aws:cluster-access-policy/AmazonEKSFuturePolicy"}}}}},
		{"a policy name takes the principal's partition",
			accessentry.Input{Mapping: mapping("arn:aws-cn:iam::111122223333:role/a/admins", "admin", "system:masters"), Policies: []iamv1alpha1.AccessPolicy{policy("AmazonEKSViewPolicy")}},
			accessentry.Translation{Entry: accessentry.Entry{PrincipalARN: "arn:aws-cn:iam::111122223333:role/a/admins", Type: "STANDARD", Username: "admin",
				Policies: []accessentry.Policy{
					{ARN: "arn:aws-cn:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"},
					{ARN: "arn:aws-cn:eks::aws:cluster-access-policy/AmazonEKSViewPolicy"}}}}},
		{"{{AccountID}} becomes the account of arn",
			accessentry.Input{Mapping: mapping(pathRole, "{{AccountID}}:{{SessionNameRaw}}", "team-{{AccountID}}")},
			accessentry.Translation{Entry: accessentry.Entry{PrincipalARN: pathRole, Type: "STANDARD", Username: "111122223333:{{SessionNameRaw}}", KubernetesGroups: []string{"team-111122223333"}}}},
		{"STANDARD asked for a plain mapping",
			accessentry.Input{Mapping: mapping(user, "jane", "ops"), Type: "STANDARD"},
			accessentry.Translation{Entry: accessentry.Entry{PrincipalARN: user, Type: "STANDARD", Username: "jane", KubernetesGroups: []string{"ops"}}}},
		{"a group of eks: in a STANDARD entry",
			accessentry.Input{Mapping: mapping(user, "jane", "eks:readers")},
			accessentry.Translation{Entry: accessentry.Entry{PrincipalARN: user, Type: "STANDARD", Username: "jane", KubernetesGroups: []string{"eks:readers"}}}},
		{"a Linux node role",
			accessentry.Input{Mapping: mapping(nodeRole, ec2Node, "system:bootstrappers", "system:nodes")},
			accessentry.Translation{Entry: accessentry.Entry{PrincipalARN: nodeRole, Type: "EC2_LINUX"}}},
		{"a Linux node role, type given",
			accessentry.Input{Mapping: mapping(nodeRole, ec2Node, "system:nodes"), Type: "EC2_LINUX"},
			accessentry.Translation{Entry: accessentry.Entry{PrincipalARN: nodeRole, Type: "EC2_LINUX"}}},
		{"a Windows node role, by its group",
			accessentry.Input{Mapping: mapping(nodeRole, ec2Node, "system:bootstrappers", "system:nodes", "eks:kube-proxy-windows")},
			accessentry.Translation{Entry: accessentry.Entry{PrincipalARN: nodeRole, Type: "EC2_WINDOWS"}}},
		{"a Windows node role, by its type",
			accessentry.Input{Mapping: mapping(nodeRole, ec2Node, "system:bootstrappers", "system:nodes"), Type: "EC2_WINDOWS"},
			accessentry.Translation{Entry: accessentry.Entry{PrincipalARN: nodeRole, Type: "EC2_WINDOWS"}}},
		{"a Fargate pod execution role",
			accessentry.Input{Mapping: mapping(nodeRole, otherNode, "system:bootstrappers", "system:nodes", "system:node-proxier")},
			accessentry.Translation{Entry: accessentry.Entry{PrincipalARN: nodeRole, Type: "FARGATE_LINUX"}}},
		{"the session node form without node-proxier is taken for Fargate",
			accessentry.Input{Mapping: mapping(nodeRole, otherNode, "system:bootstrappers", "system:nodes")},
			accessentry.Translation{Entry: accessentry.Entry{PrincipalARN: nodeRole, Type: "FARGATE_LINUX"}}},
		{"a hybrid nodes role, by its type",
			accessentry.Input{Mapping: mapping(nodeRole, otherNode, "system:bootstrappers", "system:nodes"), Type: "HYBRID_LINUX"},
			accessentry.Translation{Entry: accessentry.Entry{PrincipalARN: nodeRole, Type: "HYBRID_LINUX"}}},
		{"a node role without a path asks to be resolved",
			accessentry.Input{Mapping: mapping("arn:aws:iam::111122223333:role/nodes", ec2Node, "system:nodes")},
			accessentry.Translation{Entry: accessentry.Entry{PrincipalARN: "arn:aws:iam::111122223333:role/nodes", Type: "EC2_LINUX"}, ResolveRole: "nodes"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := accessentry.Translate(tc.in)
			if err != nil {
				t.Fatalf("Translate: %v", err)
			}
			if diff := gocmp.Diff(tc.want, got); diff != "" {
				t.Fatalf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestTranslateRefuses covers every rule of a mapping aws-auth holds but no
// access entry can: each must come back as a *NotRepresentable naming it.
func TestTranslateRefuses(t *testing.T) {
	cases := []struct {
		name string
		in   accessentry.Input
		rule string
	}{
		{"an account", accessentry.Input{Mapping: awsauth.Mapping{AccountID: "111122223333"}}, accessentry.RuleAccount},
		{"system:bootstrappers in a STANDARD entry", accessentry.Input{Mapping: mapping(pathRole, "x", "system:bootstrappers")}, accessentry.RuleSystemGroup},
		{"system:nodes without a node username", accessentry.Input{Mapping: mapping(pathRole, "x", "system:nodes")}, accessentry.RuleSystemGroup},
		{"a group that becomes system: once expanded", accessentry.Input{Mapping: mapping(pathRole, "x", "system:{{AccountID}}")}, accessentry.RuleSystemGroup},
		{"username system:", accessentry.Input{Mapping: mapping(pathRole, "system:admin")}, accessentry.RuleReservedUsername},
		{"username eks:", accessentry.Input{Mapping: mapping(pathRole, "eks:admin")}, accessentry.RuleReservedUsername},
		{"username aws:", accessentry.Input{Mapping: mapping(pathRole, "aws:admin")}, accessentry.RuleReservedUsername},
		{"username amazon:", accessentry.Input{Mapping: mapping(pathRole, "amazon:admin")}, accessentry.RuleReservedUsername},
		{"username iam:", accessentry.Input{Mapping: mapping(pathRole, "iam:admin")}, accessentry.RuleReservedUsername},
		{"a node username without system:nodes", accessentry.Input{Mapping: mapping(nodeRole, ec2Node, "system:bootstrappers")}, accessentry.RuleReservedUsername},
		{"STANDARD asked for a node role", accessentry.Input{Mapping: mapping(nodeRole, ec2Node, "system:nodes"), Type: "STANDARD"}, accessentry.RuleReservedUsername},
		{"{{AccessKeyID}}", accessentry.Input{Mapping: mapping(user, "jane:{{AccessKeyID}}")}, accessentry.RuleUsernameTemplate},
		{"{{EC2PrivateDNSName}} in a STANDARD username", accessentry.Input{Mapping: mapping(nodeRole, "node:{{EC2PrivateDNSName}}")}, accessentry.RuleUsernameTemplate},
		{"a template in a group", accessentry.Input{Mapping: mapping(pathRole, "x", "team:{{SessionName}}")}, accessentry.RuleGroupTemplate},
		{"the node form on a user", accessentry.Input{Mapping: mapping(user, otherNode, "system:nodes")}, accessentry.RuleNodeNeedsRole},
		{"a node type asked for a user", accessentry.Input{Mapping: mapping(user, "jane"), Type: "HYBRID_LINUX"}, accessentry.RuleNodeNeedsRole},
		{"another group on a node role", accessentry.Input{Mapping: mapping(nodeRole, ec2Node, "system:nodes", "ops")}, accessentry.RuleNodeGroups},
		{"the Fargate group on an EC2 node role", accessentry.Input{Mapping: mapping(nodeRole, ec2Node, "system:nodes", "system:node-proxier")}, accessentry.RuleNodeGroups},
		{"the Windows group on a Fargate role", accessentry.Input{Mapping: mapping(nodeRole, otherNode, "system:nodes", "eks:kube-proxy-windows")}, accessentry.RuleNodeGroups},
		{"policies on a node role", accessentry.Input{Mapping: mapping(nodeRole, ec2Node, "system:nodes"), Policies: []iamv1alpha1.AccessPolicy{policy("AmazonEKSViewPolicy")}}, accessentry.RuleNodePolicies},
		{"policies on a hybrid nodes role", accessentry.Input{Mapping: mapping(nodeRole, otherNode, "system:nodes"), Type: "HYBRID_LINUX", Policies: []iamv1alpha1.AccessPolicy{policy("AmazonEKSViewPolicy")}}, accessentry.RuleNodePolicies},
		{"EC2_LINUX asked for a plain mapping", accessentry.Input{Mapping: mapping(pathRole, "admin"), Type: "EC2_LINUX"}, accessentry.RuleEC2Form},
		{"EC2_WINDOWS asked for the session node form", accessentry.Input{Mapping: mapping(nodeRole, otherNode, "system:nodes"), Type: "EC2_WINDOWS"}, accessentry.RuleEC2Form},
		{"FARGATE_LINUX asked for a plain mapping", accessentry.Input{Mapping: mapping(pathRole, "admin"), Type: "FARGATE_LINUX"}, accessentry.RuleSessionForm},
		{"HYBRID_LINUX asked for the EC2 node form", accessentry.Input{Mapping: mapping(nodeRole, ec2Node, "system:nodes"), Type: "HYBRID_LINUX"}, accessentry.RuleSessionForm},
		{"EC2_LINUX asked with the Windows group", accessentry.Input{Mapping: mapping(nodeRole, ec2Node, "system:nodes", "eks:kube-proxy-windows"), Type: "EC2_LINUX"}, accessentry.RuleWindowsGroup},
		{"HYBRID_LINUX asked with the Fargate group", accessentry.Input{Mapping: mapping(nodeRole, otherNode, "system:nodes", "system:node-proxier"), Type: "HYBRID_LINUX"}, accessentry.RuleNodeProxierGroup},
		{"system:masters and the cluster admin policy on namespaces", accessentry.Input{Mapping: mapping(pathRole, "admin", "system:masters"), Policies: []iamv1alpha1.AccessPolicy{policy("AmazonEKSClusterAdminPolicy", "a")}}, accessentry.RuleMastersScope},
		{"a service-linked role", accessentry.Input{Mapping: mapping("arn:aws:iam::111122223333:role/aws-service-role/eks.amazonaws.com/AWSServiceRoleForAmazonEKS", "x")}, accessentry.RuleServiceLinkedRole},
		{"a role that resolves to a service-linked role", accessentry.Input{Mapping: mapping("arn:aws:iam::111122223333:role/AWSServiceRoleForAmazonEKS", "x"),
			ResolvedARN: "arn:aws:iam::111122223333:role/aws-service-role/eks.amazonaws.com/AWSServiceRoleForAmazonEKS"}, accessentry.RuleServiceLinkedRole},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := accessentry.Translate(tc.in)
			var refusal *accessentry.NotRepresentable
			if !errors.As(err, &refusal) {
				t.Fatalf("Translate = %+v, %v; want a refusal for %q", got, err, tc.rule)
			}
			if refusal.Rule != tc.rule {
				t.Fatalf("refused for %q, want %q", refusal.Rule, tc.rule)
			}
			if !strings.HasPrefix(err.Error(), tc.rule) {
				t.Fatalf("error %q does not start with its rule", err)
			}
		})
	}
}

// TestTranslateInvalid covers what is wrong with a spec itself: errors
// that name the rule, and are not refusals.
func TestTranslateInvalid(t *testing.T) {
	many := func(n int, each func(i int) iamv1alpha1.AccessPolicy) []iamv1alpha1.AccessPolicy {
		out := make([]iamv1alpha1.AccessPolicy, n)
		for i := range out {
			out[i] = each(i)
		}
		return out
	}
	namespaces := make([]iamv1alpha1.AccessPolicyNamespace, 21)
	for i := range namespaces {
		namespaces[i] = iamv1alpha1.AccessPolicyNamespace(fmt.Sprintf("ns-%d", i))
	}
	with := func(p ...iamv1alpha1.AccessPolicy) accessentry.Input {
		return accessentry.Input{Mapping: mapping(pathRole, "dev"), Policies: p}
	}
	cases := []struct {
		name string
		in   accessentry.Input
		want string
	}{
		{"what aws-auth refuses", accessentry.Input{Mapping: mapping(pathRole, "")}, awsauth.RuleUsernameIsSet},
		{"a type with accountID", accessentry.Input{Mapping: awsauth.Mapping{AccountID: "111122223333"}, Type: "STANDARD"}, accessentry.RuleFieldsNeedARN},
		{"policies with accountID", accessentry.Input{Mapping: awsauth.Mapping{AccountID: "111122223333"}, Policies: []iamv1alpha1.AccessPolicy{policy("AmazonEKSViewPolicy")}}, accessentry.RuleFieldsNeedARN},
		{"an unknown type", accessentry.Input{Mapping: mapping(pathRole, "dev"), Type: "EC2"}, accessentry.RuleType},
		{"a misspelled policy", with(policy("AmazonEKSClusterAdmin")), accessentry.RulePolicy},
		{"a policy name in the wrong case", with(policy("amazoneksviewpolicy")), accessentry.RulePolicy},
		{"a service-linked-only policy by name", with(policy("AmazonEKSHybridPolicy")), accessentry.RulePolicy},
		{"an IAM policy ARN", with(policy("arn:aws:iam::aws:policy/AdministratorAccess")), accessentry.RulePolicy},
		{"a policy ARN of an unknown partition", with(policy("arn:aws-mars:eks::aws:cluster-access-policy/AmazonEKSViewPolicy")), accessentry.RulePolicy},
		{"a policy ARN of another partition", with(policy("arn:aws-cn:eks::aws:cluster-access-policy/AmazonEKSViewPolicy")), accessentry.RulePolicyPartition},
		{"a policy by name and by ARN", with(policy("AmazonEKSViewPolicy"), policy(viewARN, "a")), accessentry.RulePolicyOnce},
		{"an upper case namespace", with(policy("AmazonEKSViewPolicy", "Dev")), accessentry.RuleNamespace},
		{"a lone wildcard", with(policy("AmazonEKSViewPolicy", "*")), accessentry.RuleNamespace},
		{"a wildcard inside", with(policy("AmazonEKSViewPolicy", "dev*x")), accessentry.RuleNamespace},
		{"a namespace starting with -", with(policy("AmazonEKSViewPolicy", "-dev")), accessentry.RuleNamespace},
		{"a namespace twice", with(policy("AmazonEKSViewPolicy", "a", "b", "a")), accessentry.RuleNamespaceOnce},
		{"a namespace of 64 characters", with(policy("AmazonEKSViewPolicy", iamv1alpha1.AccessPolicyNamespace(strings.Repeat("n", 64)))), accessentry.RuleNamespace},
		{"21 policies", with(many(21, func(i int) iamv1alpha1.AccessPolicy {
			return policy(fmt.Sprintf("arn:aws:eks::aws:cluster-access-policy/P%d", i))
		})...), "at most 20"},
		{"21 namespaces", with(policy("AmazonEKSViewPolicy", namespaces...)), "at most 20"},
		{"a resolved ARN of another role", accessentry.Input{Mapping: mapping(role, "admin"), ResolvedARN: "arn:aws:iam::111122223333:role/a/other"}, "is not the role"},
		{"a resolved ARN of another account", accessentry.Input{Mapping: mapping(role, "admin"), ResolvedARN: "arn:aws:iam::444455556666:role/a/admins"}, "is not the role"},
		{"a resolved ARN of a user", accessentry.Input{Mapping: mapping(role, "admin"), ResolvedARN: "arn:aws:iam::111122223333:user/admins"}, "is not the role"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := accessentry.Translate(tc.in)
			if err == nil {
				t.Fatalf("Translate accepted it: %+v", got)
			}
			var refusal *accessentry.NotRepresentable
			if errors.As(err, &refusal) {
				t.Fatalf("a spec error came back as a refusal: %v", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

// Every policy name the package knows is taken, in the principal's
// partition.
func TestTranslateEveryPolicyName(t *testing.T) {
	for _, name := range accessentry.PolicyNames {
		got, err := accessentry.Translate(accessentry.Input{Mapping: mapping("arn:aws-us-gov:iam::111122223333:role/a/dev", "dev"), Policies: []iamv1alpha1.AccessPolicy{policy(name)}})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if want := []accessentry.Policy{{ARN: "arn:aws-us-gov:eks::aws:cluster-access-policy/" + name}}; !gocmp.Equal(want, got.Entry.Policies) {
			t.Fatalf("%s: policies %+v, want %+v", name, got.Entry.Policies, want)
		}
	}
}

func TestInputFromAndStatus(t *testing.T) {
	m := &iamv1alpha1.IAMIdentityMapping{Spec: iamv1alpha1.IAMIdentityMappingSpec{
		ARN: pathRole, Username: "admin", Groups: []iamv1alpha1.IdentityName{"system:masters", "ops"},
		AccessPolicies: []iamv1alpha1.AccessPolicy{policy("AmazonEKSViewPolicy", "b", "a")},
	}}
	m.Name = "admins"
	got, err := accessentry.Translate(accessentry.InputFrom(m))
	if err != nil {
		t.Fatal(err)
	}
	want := iamv1alpha1.AccessEntryStatus{
		PrincipalARN: pathRole, Type: "STANDARD", Username: "admin", KubernetesGroups: []string{"ops"},
		Policies: []iamv1alpha1.AccessPolicyStatus{
			{PolicyARN: clusterAdminARN, Scope: "cluster"},
			{PolicyARN: viewARN, Scope: "namespace", Namespaces: []string{"a", "b"}},
		},
	}
	if diff := gocmp.Diff(want, got.Entry.Status()); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	m.Spec = iamv1alpha1.IAMIdentityMappingSpec{ARN: nodeRole, Username: ec2Node, Groups: []iamv1alpha1.IdentityName{"system:nodes"}, AccessEntryType: "EC2_WINDOWS"}
	got, err = accessentry.Translate(accessentry.InputFrom(m))
	if err != nil {
		t.Fatal(err)
	}
	if diff := gocmp.Diff(iamv1alpha1.AccessEntryStatus{PrincipalARN: nodeRole, Type: "EC2_WINDOWS"}, got.Entry.Status()); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
}
