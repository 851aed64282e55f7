package awsfake

import (
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"
)

// This file holds the rules EKS documents for access entries. Each check
// names the page it comes from; rules_test.go pins each one with a row that
// drives it through the real SDK client. Messages are the service's own
// where a public error report shows them, otherwise plain descriptions.

// Messages EKS answers with, as public error reports quote them
// (aws-ia/terraform-aws-eks-blueprints#1877, aws-controllers-k8s/community#2144,
// terraform-aws-modules/terraform-aws-eks#3024 and #2969).
const (
	msgModeNeedsAPI = "The cluster's authentication mode must be set to one of [API, API_AND_CONFIG_MAP] to perform this operation."
	msgOnlyStandard = `This operation can only be performed on Access Entries with a type of "STANDARD".`
	msgNoEntry      = "The specified principalArn could not be found. You can view your available access entries with 'list-access-entries'."
	msgBadPrincipal = "The specified principalArn is invalid: invalid principal."
)

// parsedARN is an IAM role or user ARN split into the parts the rules look
// at: arn:PARTITION:iam::ACCOUNT:KIND/PATH/NAME.
type parsedARN struct {
	raw       string
	partition string
	account   string
	kind      string // "role" or "user"
	path      string // "/" or "/a/b/"
	name      string
}

var accountID = regexp.MustCompile(`^[0-9]{12}$`)

// parseIAMARN splits an IAM role or user ARN, with or without a path.
func parseIAMARN(arn string) (parsedARN, bool) {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[1] == "" || parts[2] != "iam" || parts[3] != "" ||
		!accountID.MatchString(parts[4]) {
		return parsedARN{}, false
	}
	kind, rest, _ := strings.Cut(parts[5], "/")
	segments := strings.Split(rest, "/")
	if (kind != "role" && kind != "user") || slices.Contains(segments, "") {
		return parsedARN{}, false
	}
	path := "/"
	if len(segments) > 1 {
		path = "/" + strings.Join(segments[:len(segments)-1], "/") + "/"
	}
	return parsedARN{raw: arn, partition: parts[1], account: parts[4], kind: kind, path: path, name: segments[len(segments)-1]}, true
}

// parsePrincipal accepts exactly the ARNs an access entry can name.
//
// CreateAccessEntry API reference, principalArn: "You can't use the STS
// session principal type with access entries because this is a temporary
// principal"; creating-access-entries.html: an entry names "one, and only
// one, existing IAM principal", a role ARN "can include a path", and
// "Access entries do not support service linked roles ... in the format
// arn:aws:iam::*:role/aws-service-role/*". The messages for a bad principal
// and a service-linked role are the service's (terraform-aws-eks#2969,
// terraform-provider-aws#36447).
func parsePrincipal(arn string) (parsedARN, *APIError) {
	if parts := strings.Split(arn, ":"); len(parts) > 2 && parts[0] == "arn" && parts[2] == "sts" {
		return parsedARN{}, invalidParameter("The specified principalArn %s is an STS session principal; access entries take the ARN of an IAM role or user.", arn)
	}
	p, ok := parseIAMARN(arn)
	if !ok {
		return parsedARN{}, invalidParameter(msgBadPrincipal)
	}
	if p.kind == "role" && strings.HasPrefix(p.path, "/aws-service-role/") {
		return parsedARN{}, invalidParameter("The caller is not allowed to modify access entries with a principalArn value of a Service Linked Role")
	}
	return p, nil
}

// nodeTypes are the access entry types for nodes. creating-access-entries.html
// and the CreateAccessEntry reference: for these "the only valid ARN is IAM
// roles", the ARN "must be in the same AWS account that your cluster is in",
// and "You can't use the --kubernetes-groups option when you specify a type
// other than STANDARD"; only STANDARD entries take a username of their own.
var nodeTypes = []string{TypeEC2Linux, TypeEC2Windows, TypeFargateLinux, TypeHybridLinux, TypeHyperpodLinux, TypeEC2}

func validType(t string) bool { return t == TypeStandard || slices.Contains(nodeTypes, t) }

// takesPolicies reports whether access policies can be associated with an
// entry of the type. access-policies.html: "You can assign one or more
// access policies to access entries of type STANDARD"; the EC2 type (EKS
// Auto Mode node classes) is the documented exception, it takes
// AmazonEKSAutoNodePolicy (access-policy-permissions.html).
func takesPolicies(t string) bool { return t == TypeStandard || t == TypeEC2 }

// defaultUsername is the username EKS sets when none is given, per the
// table in creating-access-entries.html. For a role it is the role's STS
// session ARN without the role's path.
func defaultUsername(p parsedARN, typ string) string {
	switch typ {
	case TypeStandard:
		if p.kind == "user" {
			return p.raw
		}
		return "arn:" + p.partition + ":sts::" + p.account + ":assumed-role/" + p.name + "/{{SessionName}}"
	case TypeFargateLinux, TypeHybridLinux:
		return "system:node:{{SessionName}}"
	}
	return "system:node:{{EC2PrivateDNSName}}"
}

// reservedUsernamePrefixes: "The username can't start with system:, eks:,
// aws:, amazon:, or iam:."
// https://docs.aws.amazon.com/eks/latest/userguide/set-custom-username.html
var reservedUsernamePrefixes = []string{"system:", "eks:", "aws:", "amazon:", "iam:"}

// checkUsername enforces the custom username requirements of
// set-custom-username.html: no reserved prefix, and a colon somewhere
// before {{SessionName}} or {{SessionNameRaw}} when the name uses one.
func checkUsername(u string) *APIError {
	for _, p := range reservedUsernamePrefixes {
		if strings.HasPrefix(u, p) {
			return invalidParameter("The username %s is invalid, it cannot start with %s", u, p)
		}
	}
	if i := strings.Index(u, "{{SessionName"); i >= 0 && !strings.Contains(u[:i], ":") {
		return invalidParameter("The username %s is invalid, it must include a colon before {{SessionName}}", u)
	}
	return nil
}

// checkGroups refuses group names in the system: namespace Kubernetes
// reserves. The message is the one EKS returns
// (terraform-aws-modules/terraform-aws-eks#2915).
func checkGroups(groups []string) *APIError {
	for _, g := range groups {
		if g == "" {
			return invalidParameter("The kubernetes group name must not be empty")
		}
		if strings.HasPrefix(g, "system:") {
			return invalidParameter("The kubernetes group name %s is invalid, it cannot start with system:", g)
		}
	}
	return nil
}

// checkTags enforces the tag limits of the AccessEntry and TagResource
// references (at most 50 tags, keys of 1 to 128 characters, values of at
// most 256) and the aws: prefix AWS reserves for itself in keys and values
// (https://docs.aws.amazon.com/tag-editor/latest/userguide/tagging.html).
// The caller picks the error: CreateAccessEntry answers with
// InvalidParameterException, TagResource with BadRequestException.
func checkTags(tags map[string]string, refuse func(string, ...any) *APIError) *APIError {
	if len(tags) > 50 {
		return refuse("A resource can have at most 50 tags, got %d", len(tags))
	}
	for k, v := range tags {
		if n := utf8.RuneCountInString(k); n < 1 || n > 128 {
			return refuse("Tag key %q must be 1 to 128 characters long", k)
		}
		if utf8.RuneCountInString(v) > 256 {
			return refuse("The value of tag %q must be at most 256 characters long", k)
		}
		if strings.HasPrefix(strings.ToLower(k), "aws:") || strings.HasPrefix(strings.ToLower(v), "aws:") {
			return refuse("Tag %q uses the reserved prefix aws:", k)
		}
	}
	return nil
}

// checkScope enforces the AccessScope reference: the type is cluster or
// namespace, and namespaces are "required if you specified namespace";
// a cluster scope names none (access-policies.html: to widen a scope to
// the cluster, "run the command again using type=cluster, removing" the
// namespaces).
func checkScope(s AccessScope) *APIError {
	switch s.Type {
	case ScopeCluster:
		if len(s.Namespaces) > 0 {
			return invalidParameter("An access scope of type cluster takes no namespaces")
		}
	case ScopeNamespace:
		if len(s.Namespaces) == 0 {
			return invalidParameter("An access scope of type namespace needs at least one namespace")
		}
		if slices.Contains(s.Namespaces, "") {
			return invalidParameter("A namespace of an access scope must not be empty")
		}
	default:
		return invalidParameter("The access scope type %q is invalid, it must be cluster or namespace", s.Type)
	}
	return nil
}

// nextMode is the only authentication mode a cluster can move to from each
// mode. grant-k8s-access.html#set-cam: "Once the access entry method is
// enabled, it cannot be disabled. If the ConfigMap method is not enabled
// during cluster creation, it cannot be enabled later." EKS also refuses to
// skip API_AND_CONFIG_MAP, answering "Unsupported authentication mode update
// from CONFIG_MAP to API" (pulumi/pulumi-eks#1493).
var nextMode = map[string]string{
	ModeConfigMap:       ModeAPIAndConfigMap,
	ModeAPIAndConfigMap: ModeAPI,
}

func validMode(m string) bool { return m == ModeConfigMap || m == ModeAPIAndConfigMap || m == ModeAPI }

func checkModeChange(from, to string) *APIError {
	if !validMode(to) {
		return invalidParameter("The authentication mode %q is invalid", to)
	}
	if nextMode[from] != to {
		return invalidParameter("Unsupported authentication mode update from %s to %s", from, to)
	}
	return nil
}
