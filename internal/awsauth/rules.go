package awsauth

import (
	"fmt"
	"strings"
)

// The rules a mapping must keep, each worded once. The CRD's validation
// messages (api/v1alpha1) carry the same words, so that kubectl apply, a
// mapping's status and the render and import commands say the same thing
// about the same mistake; a test holds the CRD to these.
const (
	RuleOneIdentity   = "set exactly one of arn (an IAM role or user) and accountID (a whole AWS account)"
	RuleUsernameIsSet = "username is required with arn"
	RuleAccountAlone  = "username and groups cannot be set with accountID: an account entry maps every identity of the account under its default username"
	RuleAccountID     = "accountID must be exactly 12 digits"
	RuleRoleTemplate  = "{{EC2PrivateDNSName}} is expanded only for roles; a user mapping cannot use it"
	RuleFixedPrefix   = "username must start with a fixed prefix that ends in ':' before its first template, such as team:{{SessionName}} ({{AccountID}} may come first): whoever assumes the role chooses the session name, and with it the rest of the username"
	RuleNoControl     = "must not contain control characters"
	RuleTemplates     = "the only templates are {{AccountID}}, {{SessionName}}, {{SessionNameRaw}}, {{AccessKeyID}}, and {{EC2PrivateDNSName}} for roles"
	RuleARNForm       = "arn must be arn:<partition>:iam::<12-digit account>:role/<name> or ...:user/<name>"
	RuleARNStart      = "arn must start with arn: (expected arn:<partition>:iam::<12-digit account>:role/<name> or ...:user/<name>)"
	RuleARNIAM        = "arn must be an IAM ARN (arn:<partition>:iam::<account>:...)"
	RuleARNAccount    = "arn must carry an account ID of exactly 12 digits"
	RuleARNKind       = "arn must name an IAM role (role/<name>) or user (user/<name>)"
	RuleARNName       = "arn has an invalid name or path: names are 1-64 characters of letters, digits and +=,.@_-"
	// RuleAssumedRole is followed by the role to map instead, when the
	// session ARN names it.
	RuleAssumedRole = "an STS assumed-role ARN identifies one session and never matches: map the role instead"
)

// RuleARNPartition names every partition, as the CRD's message does.
var RuleARNPartition = "arn has an unknown partition: it must be one of " + strings.Join(Partitions, ", ")

// broken is the error for a value that breaks a rule: the rule's words
// (after the field they are about, when they do not name it), then what
// was given.
func broken(field, rule, value string) error {
	if field != "" {
		rule = field + ": " + rule
	}
	return fmt.Errorf("%s (got %q)", rule, value)
}
