// Package awsauth is the pure core of aws-auth-guardian: it validates
// identity mappings, resolves conflicts between them, renders the aws-auth
// ConfigMap data and parses it back. Nothing here talks to a cluster.
package awsauth

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Section is one of the three keys of aws-auth the EKS authenticator reads.
// The case matters: the authenticator ignores "maproles".
type Section string

// The sections of aws-auth, as the authenticator spells them.
const (
	MapRoles    Section = "mapRoles"
	MapUsers    Section = "mapUsers"
	MapAccounts Section = "mapAccounts"
)

// Partitions are the AWS partitions an IAM ARN may name.
var Partitions = []string{"aws", "aws-cn", "aws-us-gov", "aws-iso", "aws-iso-b", "aws-iso-e", "aws-iso-f", "aws-eusc"}

var (
	partitionAlternation = strings.Join(Partitions, "|")
	// iamARN splits an IAM role or user ARN into partition, account, kind
	// and name; the path is matched but not captured.
	iamARN = regexp.MustCompile(`^arn:(` + partitionAlternation + `):iam::([0-9]{12}):(role|user)/(?:[\w+=,.@-]+/)*([\w+=,.@-]{1,64})$`)
	// assumedRoleARN is what `aws sts get-caller-identity` prints for a role
	// session; people paste it by mistake.
	assumedRoleARN = regexp.MustCompile(`^arn:([a-z-]+):sts::([0-9]{12}):assumed-role/([\w+=,.@-]+)/`)
	accountID      = regexp.MustCompile(`^[0-9]{12}$`)
)

// CanonicalARN validates an IAM role or user ARN and returns the form the
// authenticator matches, with the section it belongs in. A role path is
// stripped because the authenticator only ever sees role/<name> (role names
// are unique per account); a user ARN keeps its path.
func CanonicalARN(arn string) (string, Section, error) {
	if m := assumedRoleARN.FindStringSubmatch(arn); m != nil {
		return "", "", fmt.Errorf("%s: arn:%s:iam::%s:role/%s (got %q)", RuleAssumedRole, m[1], m[2], m[3], arn)
	}
	m := iamARN.FindStringSubmatch(arn)
	if m == nil {
		return "", "", describeBadARN(arn)
	}
	partition, account, kind, name := m[1], m[2], m[3], m[4]
	if kind == "user" {
		return arn, MapUsers, nil
	}
	return fmt.Sprintf("arn:%s:iam::%s:role/%s", partition, account, name), MapRoles, nil
}

// describeBadARN says which part of an ARN is wrong, so that the message
// points at the mistake rather than at a regular expression.
func describeBadARN(arn string) error {
	parts := strings.SplitN(arn, ":", 6)
	switch {
	case len(parts) < 6 || parts[0] != "arn":
		return broken("", RuleARNStart, arn)
	case !slices.Contains(Partitions, parts[1]):
		return brokenPart(RuleARNPartition, parts[1], arn)
	case parts[2] != "iam" || parts[3] != "":
		return broken("", RuleARNIAM, arn)
	case !accountID.MatchString(parts[4]):
		return brokenPart(RuleARNAccount, parts[4], arn)
	case !strings.HasPrefix(parts[5], "role/") && !strings.HasPrefix(parts[5], "user/"):
		return brokenPart(RuleARNKind, parts[5], arn)
	default:
		return broken("", RuleARNName, arn)
	}
}

// brokenPart is broken for one part of an ARN: the part, and the ARN it
// is in.
func brokenPart(rule, part, arn string) error {
	return fmt.Errorf("%s (got %q in %q)", rule, part, arn)
}

// ValidAccountID reports an error unless id is a 12-digit AWS account ID.
func ValidAccountID(id string) error {
	if !accountID.MatchString(id) {
		return broken("", RuleAccountID, id)
	}
	return nil
}
