package awsfake_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/eks"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/smithy-go"

	"github.com/aws-auth-guardian/aws-auth-guardian/internal/testing/awsfake"
)

const (
	account      = awsfake.DefaultAccountID
	otherAccount = "444455556666"
	clusterName  = "dev"

	roleARN     = "arn:aws:iam::" + account + ":role/deployer"
	pathRoleARN = "arn:aws:iam::" + account + ":role/teams/payments/app"
	userARN     = "arn:aws:iam::" + account + ":user/alice"
	nodeRoleARN = "arn:aws:iam::" + account + ":role/node"
	otherARN    = "arn:aws:iam::" + otherAccount + ":role/auditor"
)

// callTimeout bounds every SDK call a test makes.
const callTimeout = 10 * time.Second

// newFake starts a fake with cluster "dev" in API_AND_CONFIG_MAP mode and
// the IAM principals above, and stops it when the test ends.
func newFake(t *testing.T, opts ...awsfake.Option) *awsfake.Server {
	t.Helper()
	s := awsfake.New(opts...)
	t.Cleanup(s.Close)
	if _, err := s.SeedCluster(awsfake.Cluster{Name: clusterName}); err != nil {
		t.Fatal(err)
	}
	if err := s.SeedPrincipals(roleARN, pathRoleARN, userARN, nodeRoleARN, otherARN); err != nil {
		t.Fatal(err)
	}
	return s
}

// awsConfig is what the operator will build: static credentials, a region,
// and the retryer under test.
func awsConfig(retryer func() aws.Retryer) aws.Config {
	return aws.Config{
		Region:      "us-west-2",
		Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", ""),
		Retryer:     retryer,
	}
}

// noRetries makes rule tests see the first answer.
func noRetries() aws.Retryer { return aws.NopRetryer{} }

func eksClient(s *awsfake.Server, retryer func() aws.Retryer) *eks.Client {
	return eks.NewFromConfig(awsConfig(retryer), func(o *eks.Options) { o.BaseEndpoint = aws.String(s.URL()) })
}

func iamClient(s *awsfake.Server, retryer func() aws.Retryer) *iam.Client {
	return iam.NewFromConfig(awsConfig(retryer), func(o *iam.Options) { o.BaseEndpoint = aws.String(s.URL()) })
}

func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), callTimeout)
	t.Cleanup(cancel)
	return c
}

// errorCode is the service error code and HTTP status an SDK error carries.
func errorCode(err error) (string, int) {
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		return "", 0
	}
	status := 0
	var respErr *awshttp.ResponseError
	if errors.As(err, &respErr) {
		status = respErr.HTTPStatusCode()
	}
	return apiErr.ErrorCode(), status
}

func wantCode(t *testing.T, err error, code string, status int) {
	t.Helper()
	if err == nil {
		t.Fatalf("got success, want %s (%d)", code, status)
	}
	gotCode, gotStatus := errorCode(err)
	if gotCode != code || gotStatus != status {
		t.Fatalf("got %s (%d), want %s (%d); error: %v", gotCode, gotStatus, code, status, err)
	}
}
