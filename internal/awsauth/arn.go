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
		return "", "", fmt.Errorf("%q is an STS assumed-role session ARN, which never matches; map the role instead: arn:%s:iam::%s:role/%s", arn, m[1], m[2], m[3])
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
		return fmt.Errorf("%q is not an ARN: expected arn:<partition>:iam::<12-digit account>:role/<name> or ...:user/<name>", arn)
	case !slices.Contains(Partitions, parts[1]):
		return fmt.Errorf("%q has partition %q; the partition must be one of %s", arn, parts[1], strings.Join(Partitions, ", "))
	case parts[2] != "iam" || parts[3] != "":
		return fmt.Errorf("%q is not an IAM ARN: expected arn:%s:iam::<12-digit account>:role/<name> or ...:user/<name>", arn, parts[1])
	case !accountID.MatchString(parts[4]):
		return fmt.Errorf("%q has account ID %q; an account ID is exactly 12 digits", arn, parts[4])
	case !strings.HasPrefix(parts[5], "role/") && !strings.HasPrefix(parts[5], "user/"):
		return fmt.Errorf("%q names %q; aws-auth maps only IAM roles (role/<name>) and users (user/<name>)", arn, parts[5])
	default:
		return fmt.Errorf("%q has an invalid name or path: names are 1-64 characters of letters, digits and +=,.@_-", arn)
	}
}

// ValidAccountID reports an error unless id is a 12-digit AWS account ID.
func ValidAccountID(id string) error {
	if !accountID.MatchString(id) {
		return fmt.Errorf("account ID %q must be exactly 12 digits", id)
	}
	return nil
}
