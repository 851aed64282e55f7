package awsauth_test

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"testing"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth/awsauthtest"
)

// The builders are shared with the other test packages.
var (
	mapping      = awsauthtest.Mapping
	withARN      = awsauthtest.WithARN
	withUsername = awsauthtest.WithUsername
	withGroups   = awsauthtest.WithGroups
	withAccount  = awsauthtest.WithAccount
	createdAfter = awsauthtest.CreatedAfter
)

func roleARN(account, name string) string { return "arn:aws:iam::" + account + ":role/" + name }
func userARN(account, name string) string { return "arn:aws:iam::" + account + ":user/" + name }

func roleEntry(arn, username string, groups ...string) awsauth.Entry {
	return awsauth.Entry{Section: awsauth.MapRoles, Identity: arn, Username: username, Groups: groups}
}

func userEntry(arn, username string, groups ...string) awsauth.Entry {
	return awsauth.Entry{Section: awsauth.MapUsers, Identity: arn, Username: username, Groups: groups}
}

func accountEntry(id string) awsauth.Entry {
	return awsauth.Entry{Section: awsauth.MapAccounts, Identity: id}
}

// entryOpts compares entries without caring whether an absent list of
// groups is nil or empty: the authenticator cannot tell them apart.
var entryOpts = gocmp.Options{cmpopts.EquateEmpty()}

// sortedEntries orders entries by section and identity with the test's own
// notion of the order, so that set comparisons do not lean on the code.
func sortedEntries(entries []awsauth.Entry) []awsauth.Entry {
	rank := map[awsauth.Section]int{awsauth.MapRoles: 0, awsauth.MapUsers: 1, awsauth.MapAccounts: 2}
	return slices.SortedStableFunc(slices.Values(entries), func(a, b awsauth.Entry) int {
		return cmp.Or(cmp.Compare(rank[a.Section], rank[b.Section]), strings.Compare(strings.ToLower(a.Identity), strings.ToLower(b.Identity)))
	})
}

func requireErrorContains(t *testing.T, err error, wants ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one containing %q", wants)
	}
	for _, w := range wants {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
}

func account(i int) string { return fmt.Sprintf("%012d", 100000000000+i) }

// renderData is the data of a render, for tests about the bytes.
func renderData(entries []awsauth.Entry) (map[string]string, error) {
	rendered, err := awsauth.Render(entries)
	return rendered.Data, err
}
