package awsfake_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eks"
	"github.com/aws/aws-sdk-go-v2/service/eks/types"

	"github.com/aws-auth-guardian/aws-auth-guardian/internal/testing/awsfake"
)

// Documentation pages the rules come from.
const (
	docCreating    = "https://docs.aws.amazon.com/eks/latest/userguide/creating-access-entries.html"
	docUsername    = "https://docs.aws.amazon.com/eks/latest/userguide/set-custom-username.html"
	docPolicies    = "https://docs.aws.amazon.com/eks/latest/userguide/access-policies.html"
	docAuthMode    = "https://docs.aws.amazon.com/eks/latest/userguide/grant-k8s-access.html#set-cam"
	docSettingUp   = "https://docs.aws.amazon.com/eks/latest/userguide/setting-up-access-entries.html"
	docQuotas      = "https://docs.aws.amazon.com/general/latest/gr/eks.html#limits_eks"
	docCreateAPI   = "https://docs.aws.amazon.com/eks/latest/APIReference/API_CreateAccessEntry.html"
	docListAPI     = "https://docs.aws.amazon.com/eks/latest/APIReference/API_ListAccessEntries.html"
	docScopeAPI    = "https://docs.aws.amazon.com/eks/latest/APIReference/API_AccessScope.html"
	docEntryAPI    = "https://docs.aws.amazon.com/eks/latest/APIReference/API_AccessEntry.html"
	docTagAPI      = "https://docs.aws.amazon.com/eks/latest/APIReference/API_TagResource.html"
	docTagPrefix   = "https://docs.aws.amazon.com/tag-editor/latest/userguide/tagging.html"
	docRBACSubject = "https://kubernetes.io/docs/reference/access-authn-authz/rbac/#referring-to-subjects"
)

// ruleCase pins one rule: a call on the base state (cluster "dev" in
// API_AND_CONFIG_MAP mode, a STANDARD entry for roleARN, an EC2_LINUX entry
// for nodeRoleARN), and the error it must meet, or none for the rows that
// show a rule is not wider than documented.
type ruleCase struct {
	name string
	// doc is where the rule is written down.
	doc string
	// cluster is the cluster the call names; "dev" when empty.
	cluster string
	opts    []awsfake.Option
	setup   func(*testing.T, *awsfake.Server)
	call    func(context.Context, *eks.Client, string) error
	code    string
	status  int
	// msg, when set, must appear in the error, for rules that share a code.
	msg string
}

func create(principal string, mod func(*eks.CreateAccessEntryInput)) func(context.Context, *eks.Client, string) error {
	return func(ctx context.Context, c *eks.Client, cluster string) error {
		in := &eks.CreateAccessEntryInput{ClusterName: aws.String(cluster), PrincipalArn: aws.String(principal)}
		if mod != nil {
			mod(in)
		}
		_, err := c.CreateAccessEntry(ctx, in)
		return err
	}
}

func createNode(principal, typ string) func(context.Context, *eks.Client, string) error {
	return create(principal, func(in *eks.CreateAccessEntryInput) { in.Type = aws.String(typ) })
}

func updateEntry(principal string, mod func(*eks.UpdateAccessEntryInput)) func(context.Context, *eks.Client, string) error {
	return func(ctx context.Context, c *eks.Client, cluster string) error {
		in := &eks.UpdateAccessEntryInput{ClusterName: aws.String(cluster), PrincipalArn: aws.String(principal)}
		mod(in)
		_, err := c.UpdateAccessEntry(ctx, in)
		return err
	}
}

func associate(principal, policy string, scope types.AccessScope) func(context.Context, *eks.Client, string) error {
	return func(ctx context.Context, c *eks.Client, cluster string) error {
		_, err := c.AssociateAccessPolicy(ctx, &eks.AssociateAccessPolicyInput{
			ClusterName: aws.String(cluster), PrincipalArn: aws.String(principal),
			PolicyArn: aws.String(policy), AccessScope: &scope,
		})
		return err
	}
}

func setMode(mode types.AuthenticationMode) func(context.Context, *eks.Client, string) error {
	return func(ctx context.Context, c *eks.Client, cluster string) error {
		_, err := c.UpdateClusterConfig(ctx, &eks.UpdateClusterConfigInput{
			Name: aws.String(cluster), AccessConfig: &types.UpdateAccessConfigRequest{AuthenticationMode: mode},
		})
		return err
	}
}

func listEntries(maxResults int32) func(context.Context, *eks.Client, string) error {
	return func(ctx context.Context, c *eks.Client, cluster string) error {
		_, err := c.ListAccessEntries(ctx, &eks.ListAccessEntriesInput{ClusterName: aws.String(cluster), MaxResults: aws.Int32(maxResults)})
		return err
	}
}

// modeCluster replaces the base cluster by one in the given mode.
func modeCluster(mode string) func(*testing.T, *awsfake.Server) {
	return func(t *testing.T, s *awsfake.Server) {
		t.Helper()
		if _, err := s.SeedCluster(awsfake.Cluster{Name: "legacy", AuthenticationMode: mode}); err != nil {
			t.Fatal(err)
		}
	}
}

var (
	viewPolicy    = awsfake.PolicyARN("AmazonEKSViewPolicy")
	clusterScope  = types.AccessScope{Type: types.AccessScopeTypeCluster}
	nsScope       = types.AccessScope{Type: types.AccessScopeTypeNamespace, Namespaces: []string{"team-a", "dev-*"}}
	sessionSuffix = "{{SessionName}}"
)

func ruleCases() []ruleCase {
	cases := []ruleCase{
		{
			// "To begin using access entries, you must change the
			// authentication mode of the cluster to either the
			// API_AND_CONFIG_MAP or API modes."
			name: "CONFIG_MAP cluster refuses CreateAccessEntry", doc: docSettingUp,
			setup:   modeCluster(awsfake.ModeConfigMap),
			call:    create(roleARN, nil),
			cluster: "legacy",
			code:    "InvalidRequestException", status: 400,
		},
		{
			name: "CONFIG_MAP cluster refuses ListAccessEntries", doc: docSettingUp,
			setup:   modeCluster(awsfake.ModeConfigMap),
			call:    listEntries(10),
			cluster: "legacy",
			code:    "InvalidRequestException", status: 400,
		},
		{
			name: "API cluster takes access entries", doc: docSettingUp,
			setup:   modeCluster(awsfake.ModeAPI),
			call:    create(userARN, nil),
			cluster: "legacy",
		},
		{
			// The prefix "system:" is reserved for Kubernetes; EKS answers
			// "The kubernetes group name system:masters is invalid, it
			// cannot start with system:" (terraform-aws-eks#2915).
			name: "group in system: namespace refused on create", doc: docRBACSubject,
			call: create(userARN, func(in *eks.CreateAccessEntryInput) { in.KubernetesGroups = []string{"viewers", "system:masters"} }),
			code: "InvalidParameterException", status: 400,
			msg: "cannot start with system:",
		},
		{
			name: "group in system: namespace refused on update", doc: docRBACSubject,
			call: updateEntry(roleARN, func(in *eks.UpdateAccessEntryInput) { in.KubernetesGroups = []string{"system:nodes"} }),
			code: "InvalidParameterException", status: 400,
			msg: "cannot start with system:",
		},
		{
			name: "group merely containing system: accepted", doc: docRBACSubject,
			call: create(userARN, func(in *eks.CreateAccessEntryInput) { in.KubernetesGroups = []string{"team:system:ops"} }),
		},
		{
			// "The username would have to be :john{{SessionName}} or
			// jo:hn{{SessionName}}"; john{{SessionName}} is refused.
			name: "{{SessionName}} without a colon before it refused", doc: docCreating,
			call: create(pathRoleARN, func(in *eks.CreateAccessEntryInput) { in.Username = aws.String("john" + sessionSuffix) }),
			code: "InvalidParameterException", status: 400,
			msg: "colon before",
		},
		{
			name: "colon before {{SessionName}} accepted", doc: docCreating,
			call: create(pathRoleARN, func(in *eks.CreateAccessEntryInput) { in.Username = aws.String("jo:hn" + sessionSuffix) }),
		},
		{
			// "An IAM principal can't be included in more than one access
			// entry"; EKS answers 409 "The specified access entry resource
			// is already in use on this cluster."
			name: "duplicate principal refused", doc: docCreating,
			call: create(roleARN, nil),
			code: "ResourceInUseException", status: 409,
		},
		{
			// CreateAccessEntry: "Valid values are STANDARD, FARGATE_LINUX,
			// EC2_LINUX, EC2_WINDOWS, EC2 (for EKS Auto Mode), HYBRID_LINUX,
			// and HYPERPOD_LINUX."
			name: "unknown type refused", doc: docCreateAPI,
			call: createNode(userARN, "ROOT"),
			code: "InvalidParameterException", status: 400,
			msg: "type ROOT is invalid",
		},
		{
			// "You can't use the --kubernetes-groups option when you specify
			// a type other than STANDARD."
			name: "EC2_LINUX entry refuses kubernetesGroups", doc: docCreating,
			setup: deleteNodeEntry,
			call: create(nodeRoleARN, func(in *eks.CreateAccessEntryInput) {
				in.Type = aws.String(awsfake.TypeEC2Linux)
				in.KubernetesGroups = []string{"nodes"}
			}),
			code: "InvalidParameterException", status: 400,
			msg: "takes no kubernetesGroups",
		},
		{
			// "If the type of the access entry is STANDARD, you can specify
			// a username"; nodes get system:node:{{EC2PrivateDNSName}}.
			name: "EC2_LINUX entry refuses a username", doc: docCreating,
			setup: deleteNodeEntry,
			call: create(nodeRoleARN, func(in *eks.CreateAccessEntryInput) {
				in.Type = aws.String(awsfake.TypeEC2Linux)
				in.Username = aws.String("node")
			}),
			code: "InvalidParameterException", status: 400,
			msg: "takes no username",
		},
		{
			name: "EC2_LINUX entry refuses groups on update", doc: docCreating,
			call: updateEntry(nodeRoleARN, func(in *eks.UpdateAccessEntryInput) { in.KubernetesGroups = []string{"nodes"} }),
			code: "InvalidParameterException", status: 400,
			msg: "type of \"STANDARD\"",
		},
		{
			// "For nodes (...), the only valid ARN is IAM roles."
			name: "node entry refuses an IAM user", doc: docCreateAPI,
			call: createNode(userARN, awsfake.TypeEC2Linux),
			code: "InvalidParameterException", status: 400,
			msg: "ARN of an IAM role",
		},
		{
			// "If the type of the access entry is anything other than
			// STANDARD ..., the ARN must be in the same AWS account that
			// your cluster is in."
			name: "node entry refuses another account's role", doc: docCreating,
			call: createNode(otherARN, awsfake.TypeFargateLinux),
			code: "InvalidParameterException", status: 400,
			msg: "cluster's account",
		},
		{
			// "If the type is STANDARD, the ARN can be in the same, or
			// different, AWS account".
			name: "STANDARD entry takes another account's role", doc: docCreating,
			call: create(otherARN, nil),
		},
		{
			// "You can't use the STS session principal type with access
			// entries".
			name: "STS assumed-role ARN refused", doc: docCreateAPI,
			call: create("arn:aws:sts::"+account+":assumed-role/deployer/session", nil),
			code: "InvalidParameterException", status: 400,
			msg: "STS session principal",
		},
		{
			// "Access entries do not support service linked roles".
			name: "service-linked role refused", doc: docCreating,
			call: create("arn:aws:iam::"+account+":role/aws-service-role/eks.amazonaws.com/AWSServiceRoleForAmazonEKS", nil),
			code: "InvalidParameterException", status: 400,
			msg: "Service Linked Role",
		},
		{
			// An access entry names "one, and only one, existing IAM
			// principal"; EKS answers "The specified principalArn is
			// invalid: invalid principal."
			name: "principal IAM does not know refused", doc: docCreating,
			call: create("arn:aws:iam::"+account+":role/ghost", nil),
			code: "InvalidParameterException", status: 400,
			msg: "invalid principal",
		},
		{
			// "If the ARN is for an IAM role, it can include a path"; the
			// ARN without the path names no existing role
			// (terraform-aws-eks#2969).
			name: "role ARN missing its path refused", doc: docCreating,
			call: create("arn:aws:iam::"+account+":role/app", nil),
			code: "InvalidParameterException", status: 400,
			msg: "invalid principal",
		},
		{
			name: "role ARN with its path accepted", doc: docCreating,
			call: create(pathRoleARN, nil),
		},
		{
			// "Access entries per cluster: 3,000", not adjustable; lowered
			// here with WithMaxAccessEntries.
			name: "quota of entries per cluster", doc: docQuotas,
			opts: []awsfake.Option{awsfake.WithMaxAccessEntries(2)},
			call: create(userARN, nil),
			code: "ResourceLimitExceededException", status: 400,
		},
		{
			name: "entry under the quota accepted", doc: docQuotas,
			opts: []awsfake.Option{awsfake.WithMaxAccessEntries(3)},
			call: create(userARN, nil),
		},
		{
			// ResourceNotFoundException is in the errors of every access
			// entry operation; EKS answers "The specified principalArn could
			// not be found."
			name: "unknown entry on describe", doc: docCreateAPI,
			call: func(ctx context.Context, c *eks.Client, cluster string) error {
				_, err := c.DescribeAccessEntry(ctx, &eks.DescribeAccessEntryInput{ClusterName: aws.String(cluster), PrincipalArn: aws.String(userARN)})
				return err
			},
			code: "ResourceNotFoundException", status: 404,
		},
		{
			name: "unknown entry on delete", doc: docCreateAPI,
			call: func(ctx context.Context, c *eks.Client, cluster string) error {
				_, err := c.DeleteAccessEntry(ctx, &eks.DeleteAccessEntryInput{ClusterName: aws.String(cluster), PrincipalArn: aws.String(userARN)})
				return err
			},
			code: "ResourceNotFoundException", status: 404,
		},
		{
			name: "unknown entry on update", doc: docCreateAPI,
			call: updateEntry(userARN, func(in *eks.UpdateAccessEntryInput) { in.KubernetesGroups = []string{"viewers"} }),
			code: "ResourceNotFoundException", status: 404,
		},
		{
			name: "unknown entry on associate", doc: docPolicies,
			call: associate(userARN, viewPolicy, clusterScope),
			code: "ResourceNotFoundException", status: 404,
		},
		{
			name: "unknown cluster", doc: docCreateAPI,
			call:    create(userARN, nil),
			cluster: "nope",
			code:    "ResourceNotFoundException", status: 404,
		},
		{
			name: "unknown access policy", doc: docPolicies,
			call: associate(roleARN, awsfake.PolicyARN("AmazonEKSGodModePolicy"), clusterScope),
			code: "ResourceNotFoundException", status: 404,
			msg: "policyArn",
		},
		{
			name: "disassociating a policy not associated", doc: docPolicies,
			call: func(ctx context.Context, c *eks.Client, cluster string) error {
				_, err := c.DisassociateAccessPolicy(ctx, &eks.DisassociateAccessPolicyInput{
					ClusterName: aws.String(cluster), PrincipalArn: aws.String(roleARN), PolicyArn: aws.String(viewPolicy),
				})
				return err
			},
			code: "ResourceNotFoundException", status: 404,
		},
		{
			// "You can't associate an access policy to this access entry,
			// because its type is a value other than STANDARD"; EKS answers
			// 'This operation can only be performed on Access Entries with a
			// type of "STANDARD".' (aws-controllers-k8s/community#2144).
			name: "EC2_LINUX entry refuses access policies", doc: docPolicies,
			call: associate(nodeRoleARN, viewPolicy, clusterScope),
			code: "InvalidParameterException", status: 400,
			msg: "type of \"STANDARD\"",
		},
		{
			// AccessScope.namespaces: "A value is required if you specified
			// namespace for Type."
			name: "namespace scope without namespaces", doc: docScopeAPI,
			call: associate(roleARN, viewPolicy, types.AccessScope{Type: types.AccessScopeTypeNamespace}),
			code: "InvalidParameterException", status: 400,
			msg: "at least one namespace",
		},
		{
			name: "cluster scope with namespaces", doc: docPolicies,
			call: associate(roleARN, viewPolicy, types.AccessScope{Type: types.AccessScopeTypeCluster, Namespaces: []string{"team-a"}}),
			code: "InvalidParameterException", status: 400,
			msg: "takes no namespaces",
		},
		{
			name: "namespace scope with a wildcard accepted", doc: docPolicies,
			call: associate(roleARN, viewPolicy, nsScope),
		},
		{
			// "Once the access entry method is enabled, it cannot be
			// disabled. If the ConfigMap method is not enabled during
			// cluster creation, it cannot be enabled later."
			name: "API_AND_CONFIG_MAP back to CONFIG_MAP refused", doc: docAuthMode,
			call: setMode(types.AuthenticationModeConfigMap),
			code: "InvalidParameterException", status: 400,
			msg: "Unsupported authentication mode update",
		},
		{
			name: "API back to API_AND_CONFIG_MAP refused", doc: docAuthMode,
			setup:   modeCluster(awsfake.ModeAPI),
			call:    setMode(types.AuthenticationModeApiAndConfigMap),
			cluster: "legacy",
			code:    "InvalidParameterException", status: 400,
			msg: "Unsupported authentication mode update",
		},
		{
			// EKS also refuses the jump: "Unsupported authentication mode
			// update from CONFIG_MAP to API" (pulumi/pulumi-eks#1493).
			name: "CONFIG_MAP straight to API refused", doc: docAuthMode,
			setup:   modeCluster(awsfake.ModeConfigMap),
			call:    setMode(types.AuthenticationModeApi),
			cluster: "legacy",
			code:    "InvalidParameterException", status: 400,
			msg: "Unsupported authentication mode update",
		},
		{
			name: "CONFIG_MAP to API_AND_CONFIG_MAP accepted", doc: docAuthMode,
			setup:   modeCluster(awsfake.ModeConfigMap),
			call:    setMode(types.AuthenticationModeApiAndConfigMap),
			cluster: "legacy",
		},
		{
			name: "API_AND_CONFIG_MAP to API accepted", doc: docAuthMode,
			call: setMode(types.AuthenticationModeApi),
		},
		{
			// maxResults: "Valid Range: Minimum value of 1. Maximum value of 100."
			name: "maxResults above 100", doc: docListAPI,
			call: listEntries(101),
			code: "InvalidParameterException", status: 400,
		},
		{
			name: "maxResults of 0", doc: docListAPI,
			call: listEntries(0),
			code: "InvalidParameterException", status: 400,
		},
		{
			// AccessEntry.tags: "Maximum number of 50 items."
			name: "more than 50 tags", doc: docEntryAPI,
			call: create(userARN, func(in *eks.CreateAccessEntryInput) {
				in.Tags = map[string]string{}
				for i := range 51 {
					in.Tags[fmt.Sprintf("k%d", i)] = "v"
				}
			}),
			code: "InvalidParameterException", status: 400,
			msg: "at most 50 tags",
		},
		{
			// The aws: prefix is reserved to AWS in tag keys and values,
			// whatever its case.
			name: "reserved aws: tag prefix on create", doc: docTagPrefix,
			call: create(userARN, func(in *eks.CreateAccessEntryInput) { in.Tags = map[string]string{"AWS:owner": "me"} }),
			code: "InvalidParameterException", status: 400,
			msg: "reserved prefix",
		},
		{
			// TagResource's errors are BadRequestException and
			// NotFoundException in the service model.
			name: "TagResource of an unknown ARN", doc: docTagAPI,
			call: func(ctx context.Context, c *eks.Client, _ string) error {
				_, err := c.TagResource(ctx, &eks.TagResourceInput{
					ResourceArn: aws.String("arn:aws:eks:us-west-2:" + account + ":access-entry/dev/role/" + account + "/ghost/0"),
					Tags:        map[string]string{"team": "a"},
				})
				return err
			},
			code: "NotFoundException", status: 404,
		},
	}
	// "The username can't start with system:, eks:, aws:, amazon:, or
	// iam:", on create and on update.
	for _, prefix := range []string{"system:", "eks:", "aws:", "amazon:", "iam:"} {
		cases = append(cases,
			ruleCase{
				name: "username prefix " + prefix + " refused on create", doc: docUsername,
				call: create(userARN, func(in *eks.CreateAccessEntryInput) { in.Username = aws.String(prefix + "alice") }),
				code: "InvalidParameterException", status: 400, msg: "cannot start with " + prefix,
			},
			ruleCase{
				name: "username prefix " + prefix + " refused on update", doc: docUsername,
				call: updateEntry(roleARN, func(in *eks.UpdateAccessEntryInput) { in.Username = aws.String(prefix + "deployer") }),
				code: "InvalidParameterException", status: 400, msg: "cannot start with " + prefix,
			})
	}
	// Only STANDARD (and EC2, for Auto Mode) entries take access policies.
	for _, typ := range []string{awsfake.TypeEC2Windows, awsfake.TypeFargateLinux, awsfake.TypeHybridLinux} {
		cases = append(cases, ruleCase{
			name: typ + " entry refuses access policies", doc: docPolicies,
			setup: func(t *testing.T, s *awsfake.Server) {
				t.Helper()
				deleteNodeEntry(t, s)
				if _, err := s.SeedEntry(clusterName, awsfake.AccessEntry{PrincipalARN: nodeRoleARN, Type: typ}); err != nil {
					t.Fatal(err)
				}
			},
			call: associate(nodeRoleARN, viewPolicy, clusterScope),
			code: "InvalidParameterException", status: 400, msg: `type of "STANDARD"`,
		})
	}
	return cases
}

func deleteNodeEntry(t *testing.T, s *awsfake.Server) {
	t.Helper()
	if err := s.DeleteEntry(clusterName, nodeRoleARN); err != nil {
		t.Fatal(err)
	}
}

// TestRules drives each documented rule through the real SDK client, with
// retries off so that the first answer is the one checked.
func TestRules(t *testing.T) {
	for _, tc := range ruleCases() {
		t.Run(tc.name, func(t *testing.T) {
			s := newFake(t, tc.opts...)
			for _, e := range []awsfake.AccessEntry{
				{PrincipalARN: roleARN},
				{PrincipalARN: nodeRoleARN, Type: awsfake.TypeEC2Linux},
			} {
				if _, err := s.SeedEntry(clusterName, e); err != nil {
					t.Fatal(err)
				}
			}
			if tc.setup != nil {
				tc.setup(t, s)
			}
			cluster := tc.cluster
			if cluster == "" {
				cluster = clusterName
			}
			err := tc.call(ctx(t), eksClient(s, noRetries), cluster)
			if tc.code == "" {
				if err != nil {
					t.Fatalf("want success (%s), got %v", tc.doc, err)
				}
				return
			}
			wantCode(t, err, tc.code, tc.status)
			if !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("want an error about %q, got %v", tc.msg, err)
			}
		})
	}
}

// TestErrorsArriveTyped checks that the SDK turns the fake's answers into
// its typed errors, which is what the operator will match on.
func TestErrorsArriveTyped(t *testing.T) {
	s := newFake(t)
	c := eksClient(s, noRetries)
	if _, err := s.SeedEntry(clusterName, awsfake.AccessEntry{PrincipalARN: roleARN}); err != nil {
		t.Fatal(err)
	}

	err := create(roleARN, nil)(ctx(t), c, clusterName)
	var inUse *types.ResourceInUseException
	if !errors.As(err, &inUse) || inUse.ErrorMessage() == "" {
		t.Errorf("duplicate create: want a *types.ResourceInUseException with a message, got %#v", err)
	}
	err = create(userARN, func(in *eks.CreateAccessEntryInput) { in.KubernetesGroups = []string{"system:masters"} })(ctx(t), c, clusterName)
	var invalid *types.InvalidParameterException
	if !errors.As(err, &invalid) {
		t.Errorf("system: group: want a *types.InvalidParameterException, got %#v", err)
	}
	_, err = c.DescribeAccessEntry(ctx(t), &eks.DescribeAccessEntryInput{ClusterName: aws.String(clusterName), PrincipalArn: aws.String(userARN)})
	var missing *types.ResourceNotFoundException
	if !errors.As(err, &missing) {
		t.Errorf("unknown entry: want a *types.ResourceNotFoundException, got %#v", err)
	}
	if _, err := s.SeedCluster(awsfake.Cluster{Name: "legacy", AuthenticationMode: awsfake.ModeConfigMap}); err != nil {
		t.Fatal(err)
	}
	err = create(userARN, nil)(ctx(t), c, "legacy")
	var invalidRequest *types.InvalidRequestException
	if !errors.As(err, &invalidRequest) {
		t.Errorf("CONFIG_MAP cluster: want a *types.InvalidRequestException, got %#v", err)
	}
}
