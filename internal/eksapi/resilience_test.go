package eksapi

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/aws-auth-guardian/aws-auth-guardian/internal/testing/awsfake"
	"github.com/prometheus/client_golang/prometheus"
)

// With 30% of the calls throttled and 5% failed by the service, a run of
// creates still converges through the retryer, and the metric shows every
// attempt the retryer hid.
func TestRetriesConvergeUnderThrottling(t *testing.T) {
	t.Parallel()
	s := newFake(t)
	c, reg := newClient(t, s, unlimited)
	// Enough creates that, with the SDK's default of 3 attempts, one of
	// them would meet three refusals in a row (0.35^3 each) and fail.
	const n = 150
	var principals []string
	for i := range n {
		principals = append(principals, fmt.Sprintf("arn:aws:iam::%s:role/app%03d", account, i))
	}
	if err := s.SeedPrincipals(principals...); err != nil {
		t.Fatal(err)
	}
	s.SetFault(awsfake.AllOperations, awsfake.Fault{ThrottleRate: 0.3, ServerErrorRate: 0.05})

	for _, p := range principals {
		if _, err := c.CreateEntry(ctx(t), Entry{PrincipalARN: p}); err != nil {
			t.Fatalf("CreateEntry(%s): %v", p, err)
		}
	}
	if got := len(snapshot(t, s)); got != n {
		t.Errorf("the fake holds %d entries, want %d", got, n)
	}
	calls := s.Calls()["CreateAccessEntry"]
	if calls["ThrottlingException"] == 0 || calls["ServerException"] == 0 {
		t.Fatalf("the fake refused no call (%v): the faults were not in force", calls)
	}
	for result, want := range map[string]int{
		"ok":              n,
		"throttled":       calls["ThrottlingException"],
		"ServerException": calls["ServerException"],
	} {
		if got := attempts(t, reg, "CreateAccessEntry", result); got != want {
			t.Errorf("CreateAccessEntry %s attempts = %d, want %d (the fake saw %v)", result, got, want, calls)
		}
	}
}

// IAM's throttling has another code than EKS's; the metric names both
// "throttled".
func TestIAMThrottlingIsCountedAsThrottled(t *testing.T) {
	t.Parallel()
	s := newFake(t)
	c, reg := newClient(t, s, unlimited)
	s.SetFault("GetRole", awsfake.Fault{ThrottleRate: 1})
	if _, err := c.RoleARN(ctx(t), "deployer"); err == nil {
		t.Fatal("RoleARN succeeded though IAM throttles every call")
	}
	if got, want := attempts(t, reg, "GetRole", "throttled"), s.Calls()["GetRole"]["Throttling"]; got != want || got != maxAttempts {
		t.Errorf("GetRole throttled attempts = %d, the fake refused %d, want %d", got, want, maxAttempts)
	}
}

// After a burst of calls, the next one must wait 1/QPS for a token. With a
// deadline shorter than that it fails without reaching the API; without
// the limiter it would go through.
func TestRateLimiterHoldsCallsBeyondTheBurst(t *testing.T) {
	t.Parallel()
	s := newFake(t)
	// One token every 10s: far longer than the deadline below, so that
	// no scheduling delay of the test lets a token come back in time.
	const burst = 3
	c, reg := newClient(t, s, RateLimit{QPS: 0.1, Burst: burst})
	for range burst {
		if _, err := c.AuthenticationMode(ctx(t)); err != nil {
			t.Fatal(err)
		}
	}

	short, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := c.AuthenticationMode(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("the call after the burst = %v, want the context's deadline error", err)
	}
	if got := s.Calls().Total("DescribeCluster"); got != burst {
		t.Errorf("the fake saw %d DescribeCluster, want %d: the limiter let one through", got, burst)
	}
	if got := attempts(t, reg, "DescribeCluster", "ok"); got != burst {
		t.Errorf("DescribeCluster ok attempts = %d, want %d", got, burst)
	}
}

// A call beyond the burst waits for its token and then goes through.
func TestRateLimiterWaitsForTokens(t *testing.T) {
	t.Parallel()
	s := newFake(t)
	c, _ := newClient(t, s, RateLimit{QPS: 50, Burst: 1})
	start := time.Now()
	for range 3 {
		if _, err := c.AuthenticationMode(ctx(t)); err != nil {
			t.Fatal(err)
		}
	}
	// Three calls with one token at once and 50 a second: the last two
	// waited 20ms each at the least. A lower bound, which no slow machine
	// can break.
	if took := time.Since(start); took < 40*time.Millisecond {
		t.Errorf("3 calls at 50 QPS with a burst of 1 took %v, want at least 40ms", took)
	}
}

// A retry takes a token like any other attempt, since AWS counts it
// against the same quota: with the only token spent on a throttled first
// attempt, the retry waits, here past the caller's deadline.
func TestRateLimiterHoldsRetries(t *testing.T) {
	t.Parallel()
	s := newFake(t)
	c, reg := newClient(t, s, RateLimit{QPS: 0.1, Burst: 1})
	s.SetFault("DescribeCluster", awsfake.Fault{ThrottleRate: 1})
	short, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := c.AuthenticationMode(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("AuthenticationMode() = %v, want the context's deadline error", err)
	}
	if got := s.Calls().Total("DescribeCluster"); got != 1 {
		t.Errorf("the fake saw %d DescribeCluster, want 1: a retry went by the limiter", got)
	}
	if got := attempts(t, reg, "DescribeCluster", "throttled"); got != 1 {
		t.Errorf("DescribeCluster throttled attempts = %d, want 1", got)
	}
}

// A second look-up of a role, found or missing, is answered from the cache
// until its TTL runs out.
func TestRoleARNCache(t *testing.T) {
	t.Parallel()
	s := newFake(t)
	c, _ := newClient(t, s, unlimited)
	clk := awsfake.NewClock()
	c.roles.now = clk.Now
	getRoles := func() int { return s.Calls().Total("GetRole") }

	for range 2 {
		if arn, err := c.RoleARN(ctx(t), "deployer"); err != nil || arn != roleARN {
			t.Fatalf("RoleARN(deployer) = %q, %v; want %q", arn, err, roleARN)
		}
	}
	if got := getRoles(); got != 1 {
		t.Errorf("two look-ups of a role made %d GetRole, want 1", got)
	}

	for range 2 {
		if _, err := c.RoleARN(ctx(t), "later"); !IsNotFound(err) {
			t.Fatalf("RoleARN(later) = %v, want a not found error", err)
		}
	}
	if got := getRoles(); got != 2 {
		t.Errorf("two look-ups of a missing role made %d GetRole, want 1", got-1)
	}

	// The missing role is created: it is seen once the short TTL is over.
	later := "arn:aws:iam::" + account + ":role/later"
	if err := s.SeedPrincipals(later); err != nil {
		t.Fatal(err)
	}
	clk.Advance(missingTTL - time.Second)
	if _, err := c.RoleARN(ctx(t), "later"); !IsNotFound(err) {
		t.Errorf("RoleARN(later) before the TTL = %v, want the cached not found", err)
	}
	clk.Advance(time.Second)
	if arn, err := c.RoleARN(ctx(t), "later"); err != nil || arn != later {
		t.Errorf("RoleARN(later) after the TTL = %q, %v; want %q", arn, err, later)
	}
	if got := getRoles(); got != 3 {
		t.Errorf("GetRole calls = %d, want 3", got)
	}

	// A found role is asked for again after its TTL.
	clk.Advance(roleTTL)
	if _, err := c.RoleARN(ctx(t), "deployer"); err != nil {
		t.Fatal(err)
	}
	if got := getRoles(); got != 4 {
		t.Errorf("GetRole calls = %d, want 4 after the TTL of deployer", got)
	}
}

// Other errors, such as throttling the retryer gave up on, are not cached.
func TestRoleARNDoesNotCacheFailures(t *testing.T) {
	t.Parallel()
	s := newFake(t)
	c, _ := newClient(t, s, unlimited)
	s.SetFault("GetRole", awsfake.Fault{ServerErrorRate: 1})
	if _, err := c.RoleARN(ctx(t), "deployer"); err == nil || IsNotFound(err) {
		t.Fatalf("RoleARN with IAM failing = %v, want a server error", err)
	}
	s.ClearFaults()
	if arn, err := c.RoleARN(ctx(t), "deployer"); err != nil || arn != roleARN {
		t.Errorf("RoleARN once IAM recovered = %q, %v; want %q", arn, err, roleARN)
	}
}

// An API that never answers returns the caller's context error by its
// deadline, counted as no_response.
func TestHungAPIReturnsContextError(t *testing.T) {
	t.Parallel()
	s := newFake(t)
	c, reg := newClient(t, s, unlimited)
	s.SetFault("DescribeCluster", awsfake.Fault{Hang: true})

	const deadline = 300 * time.Millisecond
	short, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := c.AuthenticationMode(short)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("AuthenticationMode() = %v, want the context's deadline error", err)
		}
	case <-time.After(deadline + 10*time.Second):
		t.Fatal("AuthenticationMode did not return after its context's deadline")
	}
	if got := attempts(t, reg, "DescribeCluster", "no_response"); got != 1 {
		t.Errorf("DescribeCluster no_response attempts = %d, want 1", got)
	}
}

// An attempt EKS never answers ends at AttemptTimeout and is retried, so
// that a hung API fails the call rather than holding its caller forever.
func TestHungAttemptsTimeOut(t *testing.T) {
	t.Parallel()
	s := newFake(t)
	reg := prometheus.NewRegistry()
	c, err := New(ctx(t), Options{
		ClusterName: clusterName, RateLimit: unlimited, Registerer: reg, LoadOptions: s.SDKConfig(),
		MaxBackoff: 5 * time.Millisecond, AttemptTimeout: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	s.SetFault("DescribeCluster", awsfake.Fault{Hang: true})
	// The caller's context has no deadline of its own within the test's
	// bound: only the attempt timeout can end the call.
	done := make(chan error, 1)
	go func() {
		_, err := c.AuthenticationMode(context.Background())
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Error("AuthenticationMode() succeeded against a hung API")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("AuthenticationMode did not return: the attempts are not bounded")
	}
	if got := attempts(t, reg, "DescribeCluster", "no_response"); got < 2 {
		t.Errorf("DescribeCluster no_response attempts = %d, want the timed-out attempt retried", got)
	}
}
