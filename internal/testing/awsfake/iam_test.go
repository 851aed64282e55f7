package awsfake_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/eks"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"

	"github.com/aws-auth-guardian/aws-auth-guardian/internal/testing/awsfake"
)

// TestGetRoleReturnsTheARNWithItsPath: an access entry must name a role by
// its ARN with the path, which GetRole is how a caller learns.
func TestGetRoleReturnsTheARNWithItsPath(t *testing.T) {
	s := newFake(t)
	out, err := iamClient(s, noRetries).GetRole(ctx(t), &iam.GetRoleInput{RoleName: aws.String("app")})
	if err != nil {
		t.Fatal(err)
	}
	r := out.Role
	if aws.ToString(r.Arn) != pathRoleARN || aws.ToString(r.Path) != "/teams/payments/" || aws.ToString(r.RoleName) != "app" ||
		!strings.HasPrefix(aws.ToString(r.RoleId), "AROA") || r.CreateDate == nil {
		t.Errorf("role = %+v", r)
	}
}

func TestGetUser(t *testing.T) {
	s := newFake(t)
	out, err := iamClient(s, noRetries).GetUser(ctx(t), &iam.GetUserInput{UserName: aws.String("alice")})
	if err != nil {
		t.Fatal(err)
	}
	if u := out.User; aws.ToString(u.Arn) != userARN || aws.ToString(u.Path) != "/" || !strings.HasPrefix(aws.ToString(u.UserId), "AIDA") {
		t.Errorf("user = %+v", u)
	}
}

// TestIAMNoSuchEntity: IAM answers for its own account only, and a deleted
// role is gone from IAM while the access entry naming it stays, as
// https://docs.aws.amazon.com/eks/latest/userguide/creating-access-entries.html
// says ("If you ever delete the IAM principal with this ARN, the access
// entry isn't automatically deleted").
func TestIAMNoSuchEntity(t *testing.T) {
	s := newFake(t)
	c := iamClient(s, noRetries)
	if _, err := s.SeedEntry(clusterName, awsfake.AccessEntry{PrincipalARN: roleARN}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeletePrincipal(roleARN); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"deployer", "auditor"} { // deleted; another account's
		_, err := c.GetRole(ctx(t), &iam.GetRoleInput{RoleName: aws.String(name)})
		wantCode(t, err, "NoSuchEntity", 404)
		var nse *iamtypes.NoSuchEntityException
		if !errors.As(err, &nse) {
			t.Errorf("GetRole %s: want a *types.NoSuchEntityException, got %#v", name, err)
		}
	}
	_, err := c.GetUser(ctx(t), &iam.GetUserInput{UserName: aws.String("bob")})
	wantCode(t, err, "NoSuchEntity", 404)

	if _, err := eksClient(s, noRetries).DescribeAccessEntry(ctx(t), &eks.DescribeAccessEntryInput{
		ClusterName: aws.String(clusterName), PrincipalArn: aws.String(roleARN),
	}); err != nil {
		t.Errorf("the entry of a deleted role should stay: %v", err)
	}
	// But a new entry needs an existing principal.
	if err := s.DeleteEntry(clusterName, roleARN); err != nil {
		t.Fatal(err)
	}
	wantCode(t, create(roleARN, nil)(ctx(t), eksClient(s, noRetries), clusterName), "InvalidParameterException", 400)
}

// TestStandardEndpointVariables: the SDK's shared configuration finds the
// fake through AWS_ENDPOINT_URL_EKS and AWS_ENDPOINT_URL_IAM, the way the
// operator will be pointed at it, with no code-level endpoint override.
func TestStandardEndpointVariables(t *testing.T) {
	s := newFake(t)
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL_EKS":                s.URL(),
		"AWS_ENDPOINT_URL_IAM":                s.URL(),
		"AWS_ACCESS_KEY_ID":                   "AKIDEXAMPLE",
		"AWS_SECRET_ACCESS_KEY":               "secret",
		"AWS_REGION":                          "us-west-2",
		"AWS_CONFIG_FILE":                     filepath.Join(dir, "config"),
		"AWS_SHARED_CREDENTIALS_FILE":         filepath.Join(dir, "credentials"),
		"AWS_EC2_METADATA_DISABLED":           "true",
		"AWS_PROFILE":                         "",
		"AWS_ENDPOINT_URL":                    "",
		"AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "",
	} {
		t.Setenv(k, v)
	}
	cfg, err := config.LoadDefaultConfig(ctx(t), config.WithRetryer(noRetries))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eks.NewFromConfig(cfg).DescribeCluster(ctx(t), &eks.DescribeClusterInput{Name: aws.String(clusterName)}); err != nil {
		t.Fatal(err)
	}
	if _, err := iam.NewFromConfig(cfg).GetRole(ctx(t), &iam.GetRoleInput{RoleName: aws.String("deployer")}); err != nil {
		t.Fatal(err)
	}
	calls := s.Calls()
	if calls["DescribeCluster"][awsfake.OutcomeOK] != 1 || calls["GetRole"][awsfake.OutcomeOK] != 1 {
		t.Errorf("calls = %v, want one DescribeCluster and one GetRole", calls)
	}
}
