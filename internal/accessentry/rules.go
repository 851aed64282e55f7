package accessentry

import (
	"fmt"
	"strings"
)

// Why a mapping that aws-auth can hold has no access entry, each worded
// once, for a person to read in a mapping's status. The source of each
// rule is in the comment above it; "Create access entries" is
// https://docs.aws.amazon.com/eks/latest/userguide/creating-access-entries.html.
const (
	// An access entry names one IAM principal (CreateAccessEntry,
	// principalArn); aws-auth's mapAccounts has no counterpart.
	RuleAccount = "an accountID mapping has no access entry: an access entry names one IAM role or user, not a whole account"
	// EKS refuses such a group: "The kubernetes group name system:masters
	// is invalid, it cannot start with system:" (CreateAccessEntry, as
	// quoted in terraform-aws-modules/terraform-aws-eks#2915).
	RuleSystemGroup = "an access entry cannot have a group that starts with system: (EKS refuses them); only system:masters has an equivalent, the access policy AmazonEKSClusterAdminPolicy on the whole cluster"
	// "Create access entries": a username "can't start with system:, eks:,
	// aws:, amazon:, or iam:".
	RuleReservedUsername = "an access entry's username cannot start with system:, eks:, aws:, amazon: or iam:"
	// "Create access entries" names {{SessionName}} and {{SessionNameRaw}}
	// as the templates of a username; {{AccountID}} is replaced here by the
	// principal's account, the only account whose identities the entry
	// matches, so only these two have no equivalent.
	RuleUsernameTemplate = "an access entry's username can use only the templates {{SessionName}} and {{SessionNameRaw}} ({{AccountID}} is replaced by the account of arn); {{AccessKeyID}} and {{EC2PrivateDNSName}} have no equivalent"
	// EKS documents no template for kubernetesGroups.
	RuleGroupTemplate = "an access entry's groups cannot use templates ({{AccountID}} is replaced by the account of arn)"
	// CreateAccessEntry, principalArn: "For nodes ... the only valid ARN is
	// IAM roles."
	RuleNodeNeedsRole = "a node access entry (EC2_LINUX, EC2_WINDOWS, FARGATE_LINUX, HYBRID_LINUX) needs an IAM role, not a user"
	// "Create access entries": "You can't use the --kubernetes-groups
	// option when you specify a type other than STANDARD"; EKS gives
	// nodes their groups itself.
	RuleNodeGroups = "a node mapping can carry only the groups EKS gives nodes itself (system:nodes, system:bootstrappers, and eks:kube-proxy-windows for Windows or system:node-proxier for Fargate); a node access entry has no other groups"
	// "Associate access policies with access entries": policies are for
	// entries "of type STANDARD".
	RuleNodePolicies = "access policies can only be associated with a STANDARD access entry: EKS grants node access entries their permissions itself"
	// "Create access entries", the username EKS sets per type:
	// system:node:{{EC2PrivateDNSName}} for EC2_LINUX and EC2_WINDOWS.
	RuleEC2Form = "an EC2_LINUX or EC2_WINDOWS access entry is for a mapping with the username system:node:{{EC2PrivateDNSName}} and the group system:nodes, which EKS gives such an entry"
	// The same table: system:node:{{SessionName}} for FARGATE_LINUX and
	// HYBRID_LINUX.
	RuleSessionForm = "a FARGATE_LINUX or HYBRID_LINUX access entry is for a mapping with the username system:node:{{SessionName}} and the group system:nodes, which EKS gives such an entry"
	// "Deploy Windows nodes on EKS clusters" and "Create self-managed
	// Microsoft Windows nodes": a Windows node role's aws-auth entry carries
	// eks:kube-proxy-windows.
	RuleWindowsGroup = "the group eks:kube-proxy-windows marks a Windows node role: its access entry type is EC2_WINDOWS, not EC2_LINUX"
	// "Migrating existing aws-auth ConfigMap entries to access entries":
	// the Fargate profile's entry carries system:node-proxier, the hybrid
	// nodes role's ("Prepare cluster access for hybrid nodes") does not.
	RuleNodeProxierGroup = "the group system:node-proxier marks a Fargate pod execution role: its access entry type is FARGATE_LINUX, not HYBRID_LINUX"
	// system:masters is the whole cluster; the policy that replaces it
	// cannot also be limited to namespaces, since EKS holds one scope per
	// policy ("each policy ... once").
	RuleMastersScope = "the group system:masters grants the whole cluster: AmazonEKSClusterAdminPolicy cannot also be listed with namespaces"
	// "Create access entries": "Access entries do not support service
	// linked roles."
	RuleServiceLinkedRole = "access entries do not support service-linked roles (role/aws-service-role/...)"
)

// What an access entry's own fields must be. The CRD checks the same
// (api/v1alpha1, where the policy names are listed again); Translate
// repeats the checks for input that did not come through the API server.
const (
	// The access entry fields describe one principal's entry.
	RuleFieldsNeedARN = "accessEntryType and accessPolicies can only be set with arn: an access entry names one IAM role or user, not a whole account"
	// The policy ARN's partition is the cluster's, and so the principal's.
	RulePolicyPartition = "a policy ARN must be in the partition of arn (arn:<partition>:eks::aws:cluster-access-policy/<name>)"
	// "Associate access policies": "you can only associate each policy to
	// an access entry once".
	RulePolicyOnce = "each access policy can be listed once, by its name or by its ARN"
	// Kubernetes namespace names (DNS labels); "Associate access policies":
	// "You can use wildcard characters for a namespace name ... dev-*".
	// Only a '*' at the end, the form AWS shows, is accepted.
	RuleNamespace = "namespaces must be Kubernetes namespace names (lower case letters, digits and '-', starting with a letter or digit), or the start of one followed by '*', such as dev-*"
	// The CRD's namespaces are a set, which the API server holds to.
	RuleNamespaceOnce = "each namespace can be listed once"
	// Not one of the types the API offers.
	RuleType = "accessEntryType must be one of STANDARD, EC2_LINUX, EC2_WINDOWS, FARGATE_LINUX, HYBRID_LINUX"
)

// RulePolicy names every policy of PolicyNames, as the CRD's message does.
// "Review access policy permissions" gives each policy's ARN as
// arn:<partition>:eks::aws:cluster-access-policy/<name>.
var RulePolicy = "policy must be an access policy name (" + strings.Join(PolicyNames, ", ") + ") or an access policy ARN, arn:<partition>:eks::aws:cluster-access-policy/<name>"

// Bounds the CRD sets on the access entry fields. AWS documents no limit
// on policies per entry or namespaces per scope; these keep a mapping small.
const (
	MaxPolicies   = 20
	MaxNamespaces = 20
)

// NotRepresentable says that a mapping, valid for aws-auth, has no EKS
// access entry. Rule is one of the Rule constants above.
type NotRepresentable struct {
	Rule string
	// Value is what in the mapping breaks the rule, or "".
	Value string
}

func (e *NotRepresentable) Error() string {
	if e.Value == "" {
		return e.Rule
	}
	return fmt.Sprintf("%s (got %q)", e.Rule, e.Value)
}

func refuse(rule, value string) error {
	return &NotRepresentable{Rule: rule, Value: value}
}

// invalid is the error for an access entry field that breaks its rule.
func invalid(field, rule, value string) error {
	return fmt.Errorf("%s: %s (got %q)", field, rule, value)
}
