// Package accessentry translates an IAMIdentityMapping into the EKS access
// entry that grants the same identity, for the target that writes access
// entries instead of (or beside) aws-auth. It is pure, as internal/awsauth
// is for aws-auth: nothing here talks to AWS. What needs AWS, finding a
// role's real ARN, is asked of the caller (Translation.ResolveRole).
package accessentry

import (
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"strings"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/managed"
)

// PolicyNames are the access policies a spec may name without their ARN:
// those "Review access policy permissions"
// (https://docs.aws.amazon.com/eks/latest/userguide/access-policy-permissions.html,
// as of November 2025) lists, less those it designates "for AWS
// service-linked roles only" (AmazonEKSBlockStoragePolicy,
// AmazonEKSBlockStorageClusterPolicy, AmazonEKSComputePolicy,
// AmazonEKSComputeClusterPolicy, AmazonEKSHybridPolicy,
// AmazonEKSClusterInsightsPolicy), which no mapping's role can hold. The
// CRD lists the same names; a policy AWS adds later can be given by ARN.
var PolicyNames = []string{
	"AmazonAIOpsAssistantPolicy",
	"AmazonARCRegionSwitchScalingPolicy",
	"AmazonEKSAdminPolicy",
	"AmazonEKSAdminViewPolicy",
	"AmazonEKSAutoNodePolicy",
	"AmazonEKSClusterAdminPolicy",
	"AmazonEKSEditPolicy",
	"AmazonEKSLoadBalancingClusterPolicy",
	"AmazonEKSLoadBalancingPolicy",
	"AmazonEKSNetworkingClusterPolicy",
	"AmazonEKSNetworkingPolicy",
	"AmazonEKSSecretReaderPolicy",
	"AmazonEKSViewPolicy",
}

// Input is what a mapping asks of its access entry.
type Input struct {
	// Mapping is the mapping as aws-auth sees it.
	Mapping awsauth.Mapping
	// Type is spec.accessEntryType, or "".
	Type iamv1alpha1.AccessEntryType
	// Policies are spec.accessPolicies.
	Policies []iamv1alpha1.AccessPolicy
	// ResolvedARN is the role's ARN as IAM holds it (iam:GetRole), once a
	// Translation asked for it in ResolveRole; "" before. A role written
	// with its path is used as written, and this is ignored.
	ResolvedARN string
}

// InputFrom is the Input of a mapping object, not yet resolved.
func InputFrom(m *iamv1alpha1.IAMIdentityMapping) Input {
	return Input{Mapping: managed.MappingInput(m), Type: m.Spec.AccessEntryType, Policies: m.Spec.AccessPolicies}
}

// Entry is an EKS access entry with its access policies.
type Entry struct {
	PrincipalARN string
	Type         iamv1alpha1.AccessEntryType
	// Username and KubernetesGroups are set for STANDARD only: EKS gives
	// the node types theirs. KubernetesGroups are sorted, without repeats.
	Username         string
	KubernetesGroups []string
	// Policies are sorted by ARN; STANDARD only.
	Policies []Policy
}

// Policy is one access policy associated with an entry.
type Policy struct {
	// ARN is the policy's full ARN.
	ARN string
	// Namespaces are sorted; none means the whole cluster.
	Namespaces []string
}

// Scope is the policy's access scope type, as EKS names it.
func (p Policy) Scope() iamv1alpha1.AccessScope {
	if len(p.Namespaces) == 0 {
		return iamv1alpha1.AccessScopeCluster
	}
	return iamv1alpha1.AccessScopeNamespace
}

// Status is the entry as status.accessEntry reports it.
func (e Entry) Status() iamv1alpha1.AccessEntryStatus {
	s := iamv1alpha1.AccessEntryStatus{
		PrincipalARN:     e.PrincipalARN,
		Type:             e.Type,
		Username:         e.Username,
		KubernetesGroups: slices.Clone(e.KubernetesGroups),
	}
	for _, p := range e.Policies {
		s.Policies = append(s.Policies, iamv1alpha1.AccessPolicyStatus{PolicyARN: p.ARN, Scope: p.Scope(), Namespaces: slices.Clone(p.Namespaces)})
	}
	return s
}

// Translation is the access entry a mapping asks for.
type Translation struct {
	Entry Entry
	// ResolveRole is set when the mapping names a role without a path and
	// Input.ResolvedARN is empty: the name to look up with iam:GetRole
	// (role names are unique in an account, their paths are not part of
	// them). aws-auth must hold a role without its path, because the
	// authenticator compares names; EKS matches the role itself and wants
	// its full ARN ("Create access entries": the ARN "can include a
	// path"; aws/containers-roadmap#185: "do not strip off the path").
	// Until it is resolved, Entry.PrincipalARN is the ARN as written.
	ResolveRole string
}

// The aws-auth forms of node roles, by the username EKS gives each node
// type ("Create access entries", the table of usernames EKS sets).
const (
	nodesGroup         = "system:nodes"
	bootstrappersGroup = "system:bootstrappers"
	mastersGroup       = "system:masters"
	clusterAdmin       = "AmazonEKSClusterAdminPolicy"
)

// nodeForm is one node username: the type it means unless asked for its
// other one, and the group that settles which.
type nodeForm struct {
	plain, other iamv1alpha1.AccessEntryType
	// marker, among the groups, means markerType; asking for the other
	// type of the form then breaks markerRule.
	marker     string
	markerType iamv1alpha1.AccessEntryType
	markerRule string
	// otherFormRule is broken by asking for a type of the other form.
	otherFormRule string
}

var nodeForms = map[string]nodeForm{
	"system:node:{{EC2PrivateDNSName}}": {
		plain: iamv1alpha1.AccessEntryEC2Linux, other: iamv1alpha1.AccessEntryEC2Windows,
		marker: "eks:kube-proxy-windows", markerType: iamv1alpha1.AccessEntryEC2Windows, markerRule: RuleWindowsGroup,
		otherFormRule: RuleSessionForm,
	},
	"system:node:{{SessionName}}": {
		plain: iamv1alpha1.AccessEntryFargateLinux, other: iamv1alpha1.AccessEntryHybridLinux,
		marker: "system:node-proxier", markerType: iamv1alpha1.AccessEntryFargateLinux, markerRule: RuleNodeProxierGroup,
		otherFormRule: RuleEC2Form,
	},
}

var (
	// "Create access entries": a username "can't start with" these.
	reservedPrefixes = []string{"system:", "eks:", "aws:", "amazon:", "iam:"}
	// The templates EKS expands in a username ("Create access entries").
	usernameTemplates = []string{"{{SessionName}}", "{{SessionNameRaw}}"}
	policyARN         = regexp.MustCompile(`^arn:([a-z-]+):eks::aws:cluster-access-policy/([A-Za-z0-9]{1,128})$`)
	namespaceName     = regexp.MustCompile(`^([a-z0-9]([-a-z0-9]*[a-z0-9])?|[a-z0-9][-a-z0-9]*[*])$`)
	types             = []iamv1alpha1.AccessEntryType{iamv1alpha1.AccessEntryStandard, iamv1alpha1.AccessEntryEC2Linux, iamv1alpha1.AccessEntryEC2Windows, iamv1alpha1.AccessEntryFargateLinux, iamv1alpha1.AccessEntryHybridLinux}
)

// Translate returns the access entry that grants what the mapping grants
// through aws-auth. A mapping aws-auth refuses is refused with aws-auth's
// error; one that aws-auth holds but no access entry can express, with a
// *NotRepresentable naming the rule; a spec whose access entry fields are
// wrong, with an error naming the field.
func Translate(in Input) (Translation, error) {
	m := in.Mapping
	if _, err := m.Entry(); err != nil {
		return Translation{}, err
	}
	if m.AccountID != "" {
		if in.Type != "" || len(in.Policies) > 0 {
			return Translation{}, fmt.Errorf("%s (got accountID %q)", RuleFieldsNeedARN, m.AccountID)
		}
		return Translation{}, refuse(RuleAccount, m.AccountID)
	}
	if in.Type != "" && !slices.Contains(types, in.Type) {
		return Translation{}, invalid("accessEntryType", RuleType, string(in.Type))
	}
	p := parsePrincipal(m.ARN)
	policies, err := translatePolicies(in.Policies, p.partition)
	if err != nil {
		return Translation{}, err
	}
	t := Translation{Entry: Entry{PrincipalARN: m.ARN}}
	if p.kind == "role" && !p.hasPath {
		switch {
		case in.ResolvedARN == "":
			t.ResolveRole = p.name
		case !resolves(in.ResolvedARN, p):
			return Translation{}, fmt.Errorf("the resolved ARN %q is not the role %q of arn %q", in.ResolvedARN, p.name, m.ARN)
		default:
			t.Entry.PrincipalARN = in.ResolvedARN
		}
	}
	if strings.Contains(t.Entry.PrincipalARN, ":role/aws-service-role/") {
		return Translation{}, refuse(RuleServiceLinkedRole, t.Entry.PrincipalARN)
	}
	if t.Entry.Type, err = entryType(in.Type, m, p.kind); err != nil {
		return Translation{}, err
	}
	if t.Entry.Type != iamv1alpha1.AccessEntryStandard {
		if len(policies) > 0 {
			return Translation{}, refuse(RuleNodePolicies, policies[0].ARN)
		}
		return t, nil
	}
	username, groups, masters, err := standardIdentity(m, p.account)
	if err != nil {
		return Translation{}, err
	}
	if masters {
		if policies, err = withClusterAdmin(policies, p.partition); err != nil {
			return Translation{}, err
		}
	}
	t.Entry.Username, t.Entry.KubernetesGroups, t.Entry.Policies = username, groups, policies
	return t, nil
}

// principal is an IAM role or user ARN that awsauth.CanonicalARN accepts:
// arn:<partition>:iam::<account>:<kind>/[<path>/]<name>.
type principal struct {
	partition, account, kind, name string
	hasPath                        bool
}

func parsePrincipal(arn string) principal {
	parts := strings.SplitN(arn, ":", 6)
	kind, rest, _ := strings.Cut(parts[5], "/")
	return principal{
		partition: parts[1], account: parts[4], kind: kind,
		name:    rest[strings.LastIndex(rest, "/")+1:],
		hasPath: strings.Contains(rest, "/"),
	}
}

// resolves says whether arn is the role p names: same partition, account
// and name, the name without case, as IAM compares role names.
func resolves(arn string, p principal) bool {
	if _, section, err := awsauth.CanonicalARN(arn); err != nil || section != awsauth.MapRoles {
		return false
	}
	r := parsePrincipal(arn)
	return r.partition == p.partition && r.account == p.account && strings.EqualFold(r.name, p.name)
}

// entryType is the type the mapping's form means: a node type for a node
// username with system:nodes, STANDARD otherwise. asked, when set, picks
// where the form leaves the choice open and is refused where it
// contradicts the form.
func entryType(asked iamv1alpha1.AccessEntryType, m awsauth.Mapping, kind string) (iamv1alpha1.AccessEntryType, error) {
	if kind == "user" && asked != "" && asked != iamv1alpha1.AccessEntryStandard {
		return "", refuse(RuleNodeNeedsRole, m.ARN)
	}
	form, isNode := nodeForms[m.Username]
	if !isNode || !slices.Contains(m.Groups, nodesGroup) {
		switch asked {
		case "", iamv1alpha1.AccessEntryStandard:
			return iamv1alpha1.AccessEntryStandard, nil
		case iamv1alpha1.AccessEntryEC2Linux, iamv1alpha1.AccessEntryEC2Windows:
			return "", refuse(RuleEC2Form, m.Username)
		default:
			return "", refuse(RuleSessionForm, m.Username)
		}
	}
	if asked == iamv1alpha1.AccessEntryStandard {
		// A node's username is reserved: standardIdentity refuses it.
		return asked, nil
	}
	if kind == "user" {
		return "", refuse(RuleNodeNeedsRole, m.ARN)
	}
	if asked != "" && asked != form.plain && asked != form.other {
		return "", refuse(form.otherFormRule, string(asked))
	}
	for _, g := range m.Groups {
		if g != nodesGroup && g != bootstrappersGroup && g != form.marker {
			return "", refuse(RuleNodeGroups, g)
		}
	}
	if slices.Contains(m.Groups, form.marker) {
		if asked != "" && asked != form.markerType {
			return "", refuse(form.markerRule, string(asked))
		}
		return form.markerType, nil
	}
	return cmp.Or(asked, form.plain), nil
}

// standardIdentity is the username and groups of a STANDARD entry, and
// whether the mapping grants system:masters. {{AccountID}} becomes the
// account of the ARN: the authenticator expands it to the caller's
// account, and only identities of that account match the mapping.
func standardIdentity(m awsauth.Mapping, account string) (string, []string, bool, error) {
	username := strings.ReplaceAll(m.Username, "{{AccountID}}", account)
	if slices.ContainsFunc(reservedPrefixes, func(p string) bool { return strings.HasPrefix(username, p) }) {
		return "", nil, false, refuse(RuleReservedUsername, m.Username)
	}
	// awsauth has checked that every template is a known one, and that a
	// ':' comes before the first: EKS asks for a ':' before
	// {{SessionName}}, which this implies.
	rest := username
	for _, t := range usernameTemplates {
		rest = strings.ReplaceAll(rest, t, "")
	}
	if strings.Contains(rest, "{{") {
		return "", nil, false, refuse(RuleUsernameTemplate, m.Username)
	}
	var groups []string
	masters := false
	for _, g := range m.Groups {
		expanded := strings.ReplaceAll(g, "{{AccountID}}", account)
		switch {
		case g == mastersGroup:
			masters = true
		case strings.HasPrefix(expanded, "system:"):
			return "", nil, false, refuse(RuleSystemGroup, g)
		case strings.Contains(expanded, "{{"):
			return "", nil, false, refuse(RuleGroupTemplate, g)
		default:
			groups = append(groups, expanded)
		}
	}
	slices.Sort(groups)
	return username, slices.Compact(groups), masters, nil
}

// translatePolicies checks spec.accessPolicies and gives each its full ARN
// in the principal's partition.
func translatePolicies(in []iamv1alpha1.AccessPolicy, partition string) ([]Policy, error) {
	if len(in) > MaxPolicies {
		return nil, fmt.Errorf("accessPolicies has %d items; at most %d are allowed", len(in), MaxPolicies)
	}
	var out []Policy
	for i, p := range in {
		field := fmt.Sprintf("accessPolicies[%d]", i)
		arn, err := fullPolicyARN(field+".policy", p.Policy, partition)
		if err != nil {
			return nil, err
		}
		if slices.ContainsFunc(out, func(o Policy) bool { return o.ARN == arn }) {
			return nil, invalid(field+".policy", RulePolicyOnce, p.Policy)
		}
		if len(p.Namespaces) > MaxNamespaces {
			return nil, fmt.Errorf("%s.namespaces has %d items; at most %d are allowed", field, len(p.Namespaces), MaxNamespaces)
		}
		var namespaces []string
		for j, ns := range p.Namespaces {
			nsField := fmt.Sprintf("%s.namespaces[%d]", field, j)
			switch {
			case len(ns) > 63 || !namespaceName.MatchString(string(ns)):
				return nil, invalid(nsField, RuleNamespace, string(ns))
			case slices.Contains(namespaces, string(ns)):
				return nil, invalid(nsField, RuleNamespaceOnce, string(ns))
			}
			namespaces = append(namespaces, string(ns))
		}
		slices.Sort(namespaces)
		out = append(out, Policy{ARN: arn, Namespaces: namespaces})
	}
	slices.SortFunc(out, func(a, b Policy) int { return strings.Compare(a.ARN, b.ARN) })
	return out, nil
}

func fullPolicyARN(field, policy, partition string) (string, error) {
	if slices.Contains(PolicyNames, policy) {
		return policyARNOf(partition, policy), nil
	}
	m := policyARN.FindStringSubmatch(policy)
	switch {
	case m == nil || !slices.Contains(awsauth.Partitions, m[1]):
		return "", invalid(field, RulePolicy, policy)
	case m[1] != partition:
		return "", invalid(field, RulePolicyPartition, policy)
	}
	return policy, nil
}

func policyARNOf(partition, name string) string {
	return "arn:" + partition + ":eks::aws:cluster-access-policy/" + name
}

// withClusterAdmin adds what replaces system:masters: the cluster admin
// policy on the whole cluster. "Review access policy permissions" gives it
// every verb on every resource and non-resource URL, what the cluster-admin
// ClusterRole bound to system:masters allows. (Unlike system:masters it
// goes through EKS's authorizer, which kubectl auth can-i --list does not
// show; what it allows is the same.)
func withClusterAdmin(policies []Policy, partition string) ([]Policy, error) {
	arn := policyARNOf(partition, clusterAdmin)
	if i := slices.IndexFunc(policies, func(p Policy) bool { return p.ARN == arn }); i >= 0 {
		if len(policies[i].Namespaces) > 0 {
			return nil, refuse(RuleMastersScope, strings.Join(policies[i].Namespaces, ","))
		}
		return policies, nil
	}
	policies = append(policies, Policy{ARN: arn})
	slices.SortFunc(policies, func(a, b Policy) int { return strings.Compare(a.ARN, b.ARN) })
	return policies, nil
}
