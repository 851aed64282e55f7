package eksapi

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/aws-auth-guardian/aws-auth-guardian/internal/testing/awsfake"
)

const (
	account     = awsfake.DefaultAccountID
	clusterName = "dev"
	roleARN     = "arn:aws:iam::" + account + ":role/teams/deployer"
	userARN     = "arn:aws:iam::" + account + ":user/alice"
	nodeRoleARN = "arn:aws:iam::" + account + ":role/node"
)

// callTimeout bounds every call a test makes that is meant to succeed.
const callTimeout = 20 * time.Second

// unlimited is a rate limit no test that is not about the limiter reaches.
var unlimited = RateLimit{QPS: 10000, Burst: 10000}

// newFake starts a fake with cluster "dev" and the principals above, and
// stops it when the test ends.
func newFake(t *testing.T) *awsfake.Server {
	t.Helper()
	s := awsfake.New()
	t.Cleanup(s.Close)
	if _, err := s.SeedCluster(awsfake.Cluster{Name: clusterName}); err != nil {
		t.Fatal(err)
	}
	if err := s.SeedPrincipals(roleARN, userARN, nodeRoleARN); err != nil {
		t.Fatal(err)
	}
	return s
}

// newClient is a Client of cluster "dev" pointed at the fake, with a fresh
// registry. It goes through New and LoadDefaultConfig like the operator's,
// with the region, credentials and endpoint given as load options rather
// than environment variables, so that tests can run in parallel.
func newClient(t *testing.T, s *awsfake.Server, limit RateLimit) (*Client, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	c, err := New(ctx(t), Options{
		ClusterName: clusterName,
		RateLimit:   limit,
		Registerer:  reg,
		LoadOptions: s.SDKConfig(),
		MaxBackoff:  5 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c, reg
}

func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), callTimeout)
	t.Cleanup(cancel)
	return c
}

// attempts is the value of aws_auth_guardian_eks_api_calls_total for an
// operation and result, 0 if the series does not exist.
func attempts(t *testing.T, reg *prometheus.Registry, operation, result string) int {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "aws_auth_guardian_eks_api_calls_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["operation"] == operation && labels["result"] == result {
				return int(m.GetCounter().GetValue())
			}
		}
	}
	return 0
}
