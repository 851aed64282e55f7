package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// IdentityName is a Kubernetes username or group that the EKS authenticator
// gives an AWS identity. The only templates it may use are those the
// authenticator expands; anything else in double braces would end up
// literally in the name. Its maximum length is set per field: a username
// may be longer than a group.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:XValidation:rule="!self.matches(r'\\p{Cc}')",message="must not contain control characters"
// +kubebuilder:validation:XValidation:rule="!self.replace('{{AccountID}}', '_').replace('{{SessionName}}', '_').replace('{{SessionNameRaw}}', '_').replace('{{AccessKeyID}}', '_').replace('{{EC2PrivateDNSName}}', '_').matches('[{][{]|[}][}]')",message="the only templates are {{AccountID}}, {{SessionName}}, {{SessionNameRaw}}, {{AccessKeyID}}, and {{EC2PrivateDNSName}} for roles"
type IdentityName string

// IAMIdentityMappingSpec is one entry of aws-auth: an IAM role or user
// (arn, username, groups), or a whole AWS account (accountID).
// +kubebuilder:validation:XValidation:rule="has(self.arn) != has(self.accountID)",message="set exactly one of arn (an IAM role or user) and accountID (a whole AWS account)"
// +kubebuilder:validation:XValidation:rule="!has(self.arn) || has(self.username)",message="username is required with arn",fieldPath=".username"
// +kubebuilder:validation:XValidation:rule="!has(self.accountID) || (!has(self.username) && !has(self.groups))",message="username and groups cannot be set with accountID: an account entry maps every identity of the account under its default username"
// +kubebuilder:validation:XValidation:rule="!has(self.arn) || self.arn.contains(':role/') || ((!has(self.username) || !self.username.contains('{{EC2PrivateDNSName}}')) && (!has(self.groups) || self.groups.all(g, !g.contains('{{EC2PrivateDNSName}}'))))",message="{{EC2PrivateDNSName}} is expanded only for roles; a user mapping cannot use it"
// +kubebuilder:validation:XValidation:rule="!has(self.accountID) || (!has(self.accessEntryType) && !has(self.accessPolicies))",message="accessEntryType and accessPolicies can only be set with arn: an access entry names one IAM role or user, not a whole account"
// +kubebuilder:validation:XValidation:rule="!has(self.arn) || !has(self.accessEntryType) || self.accessEntryType == 'STANDARD' || self.arn.contains(':role/')",message="a node access entry (EC2_LINUX, EC2_WINDOWS, FARGATE_LINUX, HYBRID_LINUX) needs an IAM role, not a user",fieldPath=".accessEntryType"
// +kubebuilder:validation:XValidation:rule="!has(self.accessPolicies) || !has(self.accessEntryType) || self.accessEntryType == 'STANDARD'",message="access policies can only be associated with a STANDARD access entry: EKS grants node access entries their permissions itself",fieldPath=".accessPolicies"
// +kubebuilder:validation:XValidation:rule="!has(self.arn) || !has(self.accessPolicies) || self.accessPolicies.all(p, !p.policy.startsWith('arn:') || self.arn.startsWith('arn:' + p.policy.split(':')[1] + ':'))",message="a policy ARN must be in the partition of arn (arn:<partition>:eks::aws:cluster-access-policy/<name>)",fieldPath=".accessPolicies"
type IAMIdentityMappingSpec struct {
	// arn is the IAM role or user to map, as
	// arn:<partition>:iam::<12-digit account>:role/<name> or
	// arn:<partition>:iam::<12-digit account>:user/<name>. A role becomes a
	// mapRoles entry and a user a mapUsers entry. A role path
	// (role/<path>/<name>) is accepted and stripped, because the
	// authenticator only matches role/<name>; status.canonicalARN shows the
	// result. An STS assumed-role ARN is refused: map its role instead.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="!self.matches('^arn:[^:]*:sts::')",message="an STS assumed-role ARN identifies one session and never matches: map the role instead: arn:<partition>:iam::<account>:role/<name>",messageExpression="self.matches('^arn:[^:]*:sts::[0-9]{12}:assumed-role/[^/]+/') ? 'an STS assumed-role ARN identifies one session and never matches: map the role instead: arn:' + self.split(':')[1] + ':iam::' + self.split(':')[4] + ':role/' + self.split('/')[1] : 'an STS assumed-role ARN identifies one session and never matches: map the role instead: arn:<partition>:iam::<account>:role/<name>'"
	// +kubebuilder:validation:XValidation:rule="self.matches('^arn:[^:]*:sts::') || self.matches('^arn:(aws|aws-cn|aws-us-gov|aws-iso|aws-iso-b|aws-iso-e|aws-iso-f|aws-eusc):iam::[0-9]{12}:(role|user)/([a-zA-Z0-9_+=,.@-]+/)*[a-zA-Z0-9_+=,.@-]{1,64}$')",message="arn must be arn:<partition>:iam::<12-digit account>:role/<name> or ...:user/<name>",messageExpression="!self.startsWith('arn:') ? 'arn must start with arn: (expected arn:<partition>:iam::<12-digit account>:role/<name> or ...:user/<name>)' : !self.matches('^arn:(aws|aws-cn|aws-us-gov|aws-iso|aws-iso-b|aws-iso-e|aws-iso-f|aws-eusc):') ? 'arn has an unknown partition: it must be one of aws, aws-cn, aws-us-gov, aws-iso, aws-iso-b, aws-iso-e, aws-iso-f, aws-eusc' : !self.matches('^arn:[^:]*:iam::') ? 'arn must be an IAM ARN (arn:<partition>:iam::<account>:...)' : !self.matches('^arn:[^:]*:iam::[0-9]{12}:') ? 'arn must carry an account ID of exactly 12 digits' : !self.matches('^arn:[^:]*:iam::[0-9]{12}:(role|user)/') ? 'arn must name an IAM role (role/<name>) or user (user/<name>)' : 'arn has an invalid name or path: names are 1-64 characters of letters, digits and +=,.@_-'"
	ARN string `json:"arn,omitempty"`

	// username is the Kubernetes username the identity gets, for example
	// admin:{{SessionName}} or system:node:{{EC2PrivateDNSName}}. Required
	// with arn, forbidden with accountID. At most 256 characters. A
	// template other than {{AccountID}} may only follow a fixed prefix
	// that ends in ':', since whoever assumes the role chooses the session
	// name.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:XValidation:rule="!self.replace('{{AccountID}}', '').contains('{{') || (self.replace('{{AccountID}}', '').contains(':') && self.replace('{{AccountID}}', '').indexOf(':') < self.replace('{{AccountID}}', '').indexOf('{{'))",message="username must start with a fixed prefix that ends in ':' before its first template, such as team:{{SessionName}} ({{AccountID}} may come first): whoever assumes the role chooses the session name, and with it the rest of the username"
	Username IdentityName `json:"username,omitempty"`

	// groups are the Kubernetes groups the identity gets, for example
	// system:bootstrappers and system:nodes for a node role. Only with arn.
	// At most 16 groups of at most 128 characters each: real aws-auth files
	// use a few short ones, and the bound keeps one mapping from taking a
	// large share of aws-auth's 1 MiB.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=128
	Groups []IdentityName `json:"groups,omitempty"`

	// accountID maps every IAM identity of this 12-digit AWS account, each
	// under its default username (its ARN). Becomes a mapAccounts entry.
	// +optional
	// +kubebuilder:validation:MaxLength=12
	// +kubebuilder:validation:XValidation:rule="self.matches('^[0-9]{12}$')",message="accountID must be exactly 12 digits"
	AccountID string `json:"accountID,omitempty"`

	// accessEntryType is the type of the EKS access entry this mapping
	// becomes, for the forms that do not say it themselves: HYBRID_LINUX for
	// a hybrid nodes role (its mapping, system:node:{{SessionName}} with
	// system:nodes, is otherwise taken for a Fargate pod execution role), or
	// EC2_WINDOWS for a Windows node role whose groups lack
	// eks:kube-proxy-windows. Unset, the type follows from username and
	// groups. A type that contradicts them is refused when the access entry
	// is made. Only with arn; aws-auth has no types and ignores it.
	// +optional
	AccessEntryType AccessEntryType `json:"accessEntryType,omitempty"`

	// accessPolicies are EKS access policies to associate with this
	// mapping's access entry, each at most once, on the whole cluster or on
	// some namespaces. They have no meaning in aws-auth: the ConfigMap
	// cannot grant an access policy, so they take effect only through the
	// access entry. Only with arn, and only for a STANDARD access entry.
	// At most 20.
	// ---
	// A map keyed by policy, because EKS associates each policy with an
	// entry at most once (its scope is one value): the API server then
	// refuses a policy listed twice, and server-side apply merges the
	// policies of several managers one policy at a time.
	// +optional
	// +listType=map
	// +listMapKey=policy
	// +kubebuilder:validation:MaxItems=20
	// +kubebuilder:validation:XValidation:rule="self.all(a, self.exists_one(b, (b.policy.startsWith('arn:') ? b.policy.substring(b.policy.lastIndexOf('/') + 1) : b.policy) == (a.policy.startsWith('arn:') ? a.policy.substring(a.policy.lastIndexOf('/') + 1) : a.policy)))",message="each access policy can be listed once, by its name or by its ARN"
	AccessPolicies []AccessPolicy `json:"accessPolicies,omitempty"`
}

// AccessEntryType is the type of an EKS access entry. EKS gives the node
// types (all but STANDARD) their username, groups and permissions itself.
// +kubebuilder:validation:Enum=STANDARD;EC2_LINUX;EC2_WINDOWS;FARGATE_LINUX;HYBRID_LINUX
type AccessEntryType string

// The access entry types a mapping can become.
const (
	AccessEntryStandard     AccessEntryType = "STANDARD"
	AccessEntryEC2Linux     AccessEntryType = "EC2_LINUX"
	AccessEntryEC2Windows   AccessEntryType = "EC2_WINDOWS"
	AccessEntryFargateLinux AccessEntryType = "FARGATE_LINUX"
	AccessEntryHybridLinux  AccessEntryType = "HYBRID_LINUX"
)

// AccessPolicy is one EKS access policy and the namespaces it applies to.
type AccessPolicy struct {
	// policy is an access policy name, such as AmazonEKSViewPolicy, or its
	// ARN, arn:<partition>:eks::aws:cluster-access-policy/<name>, in the
	// partition of arn. A name must be one this version knows; an ARN may
	// name a policy AWS added since, and EKS refuses one that does not
	// exist.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:XValidation:rule="self in ['AmazonAIOpsAssistantPolicy', 'AmazonARCRegionSwitchScalingPolicy', 'AmazonEKSAdminPolicy', 'AmazonEKSAdminViewPolicy', 'AmazonEKSAutoNodePolicy', 'AmazonEKSClusterAdminPolicy', 'AmazonEKSEditPolicy', 'AmazonEKSLoadBalancingClusterPolicy', 'AmazonEKSLoadBalancingPolicy', 'AmazonEKSNetworkingClusterPolicy', 'AmazonEKSNetworkingPolicy', 'AmazonEKSSecretReaderPolicy', 'AmazonEKSViewPolicy'] || self.matches('^arn:(aws|aws-cn|aws-us-gov|aws-iso|aws-iso-b|aws-iso-e|aws-iso-f|aws-eusc):eks::aws:cluster-access-policy/[A-Za-z0-9]{1,128}$')",message="policy must be an access policy name (AmazonAIOpsAssistantPolicy, AmazonARCRegionSwitchScalingPolicy, AmazonEKSAdminPolicy, AmazonEKSAdminViewPolicy, AmazonEKSAutoNodePolicy, AmazonEKSClusterAdminPolicy, AmazonEKSEditPolicy, AmazonEKSLoadBalancingClusterPolicy, AmazonEKSLoadBalancingPolicy, AmazonEKSNetworkingClusterPolicy, AmazonEKSNetworkingPolicy, AmazonEKSSecretReaderPolicy, AmazonEKSViewPolicy) or an access policy ARN, arn:<partition>:eks::aws:cluster-access-policy/<name>"
	Policy string `json:"policy"`

	// namespaces limit the policy to these Kubernetes namespaces; without
	// any it applies to the whole cluster. An entry may end in '*' to
	// match every namespace that starts with what comes before, as EKS
	// allows (dev-* for dev-a and dev-b). EKS does not check that they
	// exist. At most 20 (a bound of ours; AWS documents none).
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=20
	Namespaces []AccessPolicyNamespace `json:"namespaces,omitempty"`
}

// AccessPolicyNamespace is a Kubernetes namespace name (at most 63 lower
// case letters, digits and '-', starting and ending with a letter or
// digit), or the start of one followed by '*'.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=63
// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$') || self.matches('^[a-z0-9][-a-z0-9]*[*]$')",message="namespaces must be Kubernetes namespace names (lower case letters, digits and '-', starting with a letter or digit), or the start of one followed by '*', such as dev-*"
type AccessPolicyNamespace string

// Section is the key of aws-auth an entry is rendered into.
// +kubebuilder:validation:Enum=mapRoles;mapUsers;mapAccounts
type Section string

// IAMIdentityMappingStatus reports whether the mapping is live in aws-auth.
type IAMIdentityMappingStatus struct {
	// observedGeneration is the generation of the spec this status is about.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// canonicalARN is the ARN as rendered into aws-auth (a role's path
	// stripped).
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	CanonicalARN string `json:"canonicalARN,omitempty"`

	// identity is what aws-auth holds the mapping under: canonicalARN for a
	// role or user, the account ID for an account (the IDENTITY column).
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	Identity string `json:"identity,omitempty"`

	// section is the key of aws-auth the entry is rendered into.
	// +optional
	Section Section `json:"section,omitempty"`

	// conditions: Ready is True only while the entry is in the live
	// aws-auth; Stalled is True when the spec cannot succeed until it (or a
	// conflicting mapping) changes.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// accessEntry is the EKS access entry the mapping translates to: what
	// the access-entry target wrote, or will write.
	// +optional
	AccessEntry *AccessEntryStatus `json:"accessEntry,omitempty"`
}

// AccessEntryStatus is an EKS access entry as aws-auth-guardian writes it.
type AccessEntryStatus struct {
	// principalARN is the IAM role or user of the entry, with a role's path
	// (EKS matches the role itself, not its name).
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	PrincipalARN string `json:"principalARN,omitempty"`

	// type is the access entry type.
	// +optional
	Type AccessEntryType `json:"type,omitempty"`

	// username is the Kubernetes username of a STANDARD entry; EKS sets the
	// username of the other types.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Username string `json:"username,omitempty"`

	// kubernetesGroups are the Kubernetes groups of a STANDARD entry.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=128
	KubernetesGroups []string `json:"kubernetesGroups,omitempty"`

	// policies are the access policies associated with the entry. At most
	// 21: the 20 of spec.accessPolicies, and AmazonEKSClusterAdminPolicy
	// for the group system:masters.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=21
	Policies []AccessPolicyStatus `json:"policies,omitempty"`
}

// AccessPolicyStatus is one access policy associated with an access entry.
type AccessPolicyStatus struct {
	// policyARN is the access policy's ARN.
	// +required
	// +kubebuilder:validation:MaxLength=256
	PolicyARN string `json:"policyARN"`

	// scope is cluster, or namespace when namespaces is set.
	// +required
	Scope AccessScope `json:"scope"`

	// namespaces are those of a namespace scope.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=20
	// +kubebuilder:validation:items:MaxLength=63
	Namespaces []string `json:"namespaces,omitempty"`
}

// AccessScope is where an access policy applies, as EKS names it.
// +kubebuilder:validation:Enum=cluster;namespace
type AccessScope string

// The access scopes.
const (
	AccessScopeCluster   AccessScope = "cluster"
	AccessScopeNamespace AccessScope = "namespace"
)

// Condition types, following the kstatus conventions that kubectl wait,
// Argo CD and Flux read.
const (
	ConditionReady       = "Ready"
	ConditionStalled     = "Stalled"
	ConditionReconciling = "Reconciling"
	// ConditionAWSAuthSynced: the mapping's entry is in the live aws-auth.
	ConditionAWSAuthSynced = "AWSAuthSynced"
	// ConditionAccessEntrySynced: the mapping's EKS access entry is what
	// status.accessEntry says.
	ConditionAccessEntrySynced = "AccessEntrySynced"
)

// Condition reasons.
const (
	// ReasonApplied: the entry is in the live aws-auth.
	ReasonApplied = "Applied"
	// ReasonInvalid: the spec is refused; the message says why.
	ReasonInvalid = "Invalid"
	// ReasonConflict: an older mapping claims the same identity.
	ReasonConflict = "Conflict"
	// ReasonRenderFailed: the mappings together cannot be rendered (the
	// authenticator would not read the render back); the live aws-auth is
	// kept.
	ReasonRenderFailed = "RenderFailed"
	// ReasonTooLarge: the entry does not fit in aws-auth's 1 MiB next to
	// the entries of older or already applied mappings, so it is left out;
	// the others are rendered as usual.
	ReasonTooLarge = "TooLarge"
	// ReasonBlocked: writing the render would remove access that aws-auth
	// grants now (see the README, "Never locked out"); the live aws-auth is
	// kept until a person allows it.
	ReasonBlocked = "Blocked"
	// ReasonProgressing: the spec changed and aws-auth does not hold it
	// yet (Reconciling=True, Ready=Unknown).
	ReasonProgressing = "Progressing"
	// ReasonPrincipalNotFound: IAM has no role or user of the mapping's
	// ARN, so no access entry can name it.
	ReasonPrincipalNotFound = "PrincipalNotFound"
	// ReasonNotRepresentable: the mapping has no EKS access entry form
	// (an account, a system: group, a reserved username); the message
	// says which rule.
	ReasonNotRepresentable = "NotRepresentable"
	// ReasonRefusedByEKS: EKS refused the mapping's access entry as
	// invalid or over its limits; the message gives EKS's reason. The
	// entry, if there is one, is kept as it is.
	ReasonRefusedByEKS = "RefusedByEKS"
)

// IAMIdentityMapping maps one IAM role, IAM user or AWS account to
// Kubernetes identities through the ConfigMap kube-system/aws-auth, which
// aws-auth-guardian renders from all IAMIdentityMappings.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=iim,categories=aws-auth
// +kubebuilder:printcolumn:name="Identity",type=string,JSONPath=`.status.identity`,description="What aws-auth holds the mapping under: the role or user ARN as rendered (path stripped), or the account ID"
// +kubebuilder:printcolumn:name="Username",type=string,JSONPath=`.spec.username`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Access-Entry",type=string,JSONPath=`.status.conditions[?(@.type=="AccessEntrySynced")].reason`,priority=1,description="The reason of AccessEntrySynced: Applied once the EKS access entry is the translation; empty while the access entry target is off (no --eks-cluster-name) or the cluster takes no access entries"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Groups",type=string,JSONPath=`.spec.groups`,priority=1
// +kubebuilder:printcolumn:name="ARN",type=string,JSONPath=`.spec.arn`,priority=1,description="The ARN as written in the spec"
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`,priority=1
type IAMIdentityMapping struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec IAMIdentityMappingSpec `json:"spec"`
	// +optional
	Status IAMIdentityMappingStatus `json:"status,omitempty"`
}

// IAMIdentityMappingList is a list of IAMIdentityMappings.
// +kubebuilder:object:root=true
type IAMIdentityMappingList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []IAMIdentityMapping `json:"items"`
}

// Names other tools rely on to recognise what aws-auth-guardian manages.
const (
	// ProtectionFinalizer holds aws-auth (and, later, mappings) while they
	// are deleted, so a deleted aws-auth keeps serving until it is replaced.
	ProtectionFinalizer = "iam.aws-auth-guardian.dev/protection"
	// ManagedByLabel and ManagedByValue mark the aws-auth this operator owns.
	ManagedByLabel = "app.kubernetes.io/managed-by"
	ManagedByValue = "aws-auth-guardian"
	// DataHashAnnotation records the sha256 of the data on aws-auth.
	DataHashAnnotation = "iam.aws-auth-guardian.dev/data-sha256"
	// AllowRenderAnnotation, set on aws-auth by a person to the sha256 of a
	// render a guard refused, lets exactly that render through.
	AllowRenderAnnotation = "iam.aws-auth-guardian.dev/allow-render"
	// AllowAccessEntryPlanAnnotation, set by a person on a mapping whose
	// access entry steps a guard holds (its deletion, say) to the sha256 of
	// the refused plan, lets exactly that plan through. Access entries have
	// no object of their own to carry it, as aws-auth carries
	// AllowRenderAnnotation; the mapping held is the one a person acts on.
	AllowAccessEntryPlanAnnotation = "iam.aws-auth-guardian.dev/allow-access-entry-plan"
)
