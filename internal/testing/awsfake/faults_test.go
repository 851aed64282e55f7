package awsfake_test

import (
	"context"
	"errors"
	"net/http/httptrace"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/eks"
	"github.com/aws/aws-sdk-go-v2/service/eks/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"

	"github.com/aws-auth-guardian/aws-auth-guardian/internal/testing/awsfake"
)

// standardRetryer is the SDK's standard retryer with its backoff shortened:
// throttling retries otherwise wait up to seconds each. The retry decisions
// (what is retryable, what is a throttle, the retry token bucket) are the
// SDK's own.
func standardRetryer(maxAttempts int) func() aws.Retryer {
	return func() aws.Retryer {
		return retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = maxAttempts
			o.Backoff = retry.NewExponentialJitterBackoff(5 * time.Millisecond)
		})
	}
}

// TestStandardRetryerGetsThroughThrottling: with 30% of calls throttled,
// every call of a client using the standard retryer succeeds, and the fake
// counts the throttled attempts.
func TestStandardRetryerGetsThroughThrottling(t *testing.T) {
	s := newFake(t, awsfake.WithSeed(7))
	if _, err := s.SeedEntry(clusterName, awsfake.AccessEntry{PrincipalARN: roleARN}); err != nil {
		t.Fatal(err)
	}
	s.SetFault(awsfake.AllOperations, awsfake.Fault{ThrottleRate: 0.3})
	c := eksClient(s, standardRetryer(10))

	const calls = 100
	for i := range calls {
		if i%2 == 0 {
			_, err := c.ListAccessEntries(ctx(t), &eks.ListAccessEntriesInput{ClusterName: aws.String(clusterName)})
			if err != nil {
				t.Fatalf("call %d: %v", i, err)
			}
			continue
		}
		if _, err := c.DescribeAccessEntry(ctx(t), &eks.DescribeAccessEntryInput{ClusterName: aws.String(clusterName), PrincipalArn: aws.String(roleARN)}); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}

	counts := s.Calls()
	ok := counts["ListAccessEntries"][awsfake.OutcomeOK] + counts["DescribeAccessEntry"][awsfake.OutcomeOK]
	throttled := counts["ListAccessEntries"]["ThrottlingException"] + counts["DescribeAccessEntry"]["ThrottlingException"]
	if ok != calls {
		t.Errorf("%d calls answered OK, want %d", ok, calls)
	}
	// With a rate of 0.3 the throttled attempts are 3/7 of the successes
	// on average; the seed fixes the draw, the bounds only catch a rate
	// that is not applied.
	if throttled < 20 || throttled > 70 {
		t.Errorf("%d attempts throttled for %d successes, want about %d", throttled, ok, ok*3/7)
	}
}

// TestInjectedErrorsAreRetryable checks that the SDK classifies what the
// fault injection answers as the real services' transient errors, in both
// protocols.
func TestInjectedErrorsAreRetryable(t *testing.T) {
	retryable := retry.IsErrorRetryables(retry.DefaultRetryables)
	throttle := retry.IsErrorThrottles(retry.DefaultThrottles)
	for _, tc := range []struct {
		name         string
		fault        awsfake.Fault
		eksCode      string
		eksStatus    int
		iamCode      string
		iamStatus    int
		wantThrottle aws.Ternary
	}{
		{"throttle", awsfake.Fault{ThrottleRate: 1}, "ThrottlingException", 429, "Throttling", 400, aws.TrueTernary},
		{"server error", awsfake.Fault{ServerErrorRate: 1}, "ServerException", 500, "ServiceFailure", 500, aws.UnknownTernary},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newFake(t)
			s.SetFault(awsfake.AllOperations, tc.fault)

			_, err := eksClient(s, noRetries).DescribeCluster(ctx(t), &eks.DescribeClusterInput{Name: aws.String(clusterName)})
			wantCode(t, err, tc.eksCode, tc.eksStatus)
			if retryable.IsErrorRetryable(err) != aws.TrueTernary || throttle.IsErrorThrottle(err) != tc.wantThrottle {
				t.Errorf("EKS %s: retryable %v, throttle %v", tc.eksCode, retryable.IsErrorRetryable(err), throttle.IsErrorThrottle(err))
			}

			_, err = iamClient(s, noRetries).GetRole(ctx(t), &iam.GetRoleInput{RoleName: aws.String("deployer")})
			wantCode(t, err, tc.iamCode, tc.iamStatus)
			if retryable.IsErrorRetryable(err) != aws.TrueTernary || throttle.IsErrorThrottle(err) != tc.wantThrottle {
				t.Errorf("IAM %s: retryable %v, throttle %v", tc.iamCode, retryable.IsErrorRetryable(err), throttle.IsErrorThrottle(err))
			}
		})
	}
	t.Run("typed", func(t *testing.T) {
		s := newFake(t)
		s.SetFault(awsfake.AllOperations, awsfake.Fault{ThrottleRate: 1})
		_, err := eksClient(s, noRetries).DescribeCluster(ctx(t), &eks.DescribeClusterInput{Name: aws.String(clusterName)})
		var throttled *types.ThrottlingException
		if !errors.As(err, &throttled) {
			t.Errorf("want a *types.ThrottlingException, got %#v", err)
		}
	})
}

// TestFaultPerOperation checks that a fault set for one operation leaves
// the others alone, replaces the AllOperations fault for that operation,
// and that ClearFaults restores good behaviour.
func TestFaultPerOperation(t *testing.T) {
	s := newFake(t)
	c := eksClient(s, noRetries)
	describe := func() error {
		_, err := c.DescribeCluster(ctx(t), &eks.DescribeClusterInput{Name: aws.String(clusterName)})
		return err
	}
	list := func() error {
		_, err := c.ListAccessEntries(ctx(t), &eks.ListAccessEntriesInput{ClusterName: aws.String(clusterName)})
		return err
	}

	s.SetFault("CreateAccessEntry", awsfake.Fault{ServerErrorRate: 1})
	wantCode(t, create(userARN, nil)(ctx(t), c, clusterName), "ServerException", 500)
	if err := list(); err != nil {
		t.Errorf("ListAccessEntries with a fault on CreateAccessEntry only: %v", err)
	}
	if snap, _ := s.Snapshot(clusterName); len(snap) != 0 {
		t.Errorf("a call failed by a fault changed the state: %+v", snap)
	}

	s.SetFault(awsfake.AllOperations, awsfake.Fault{ThrottleRate: 1})
	s.SetFault("DescribeCluster", awsfake.Fault{Latency: time.Millisecond})
	if err := describe(); err != nil {
		t.Errorf("DescribeCluster with its own fault should not meet the AllOperations one: %v", err)
	}
	wantCode(t, list(), "ThrottlingException", 429)

	// The zero Fault removes an operation's own fault, so it meets the
	// AllOperations fault again.
	s.SetFault("DescribeCluster", awsfake.Fault{})
	wantCode(t, describe(), "ThrottlingException", 429)

	s.ClearFaults()
	if err := describe(); err != nil {
		t.Errorf("after ClearFaults: %v", err)
	}
	if err := create(userARN, nil)(ctx(t), c, clusterName); err != nil {
		t.Errorf("after ClearFaults: %v", err)
	}
}

// TestFaultsAreDeterministic: the same seed and the same sequence of calls
// meet the same faults; another seed meets others.
func TestFaultsAreDeterministic(t *testing.T) {
	outcomes := func(seed uint64) []string {
		s := newFake(t, awsfake.WithSeed(seed))
		s.SetFault(awsfake.AllOperations, awsfake.Fault{ThrottleRate: 0.3, ServerErrorRate: 0.2})
		c := eksClient(s, noRetries)
		var out []string
		for range 40 {
			_, err := c.DescribeCluster(ctx(t), &eks.DescribeClusterInput{Name: aws.String(clusterName)})
			code, _ := errorCode(err)
			out = append(out, code)
		}
		return out
	}
	a, b, other := outcomes(42), outcomes(42), outcomes(43)
	if !slices.Equal(a, b) {
		t.Errorf("same seed, different faults:\n%v\n%v", a, b)
	}
	if slices.Equal(a, other) {
		t.Errorf("seeds 42 and 43 met the same faults: %v", a)
	}
	for _, want := range []string{"", "ThrottlingException", "ServerException"} {
		if !slices.Contains(a, want) {
			t.Errorf("40 calls at rates 0.3 and 0.2 never met %q: %v", want, a)
		}
	}
}

// TestLatency: a latency fault delays the answer by at least its duration.
func TestLatency(t *testing.T) {
	s := newFake(t)
	const latency = 150 * time.Millisecond
	s.SetFault("DescribeCluster", awsfake.Fault{Latency: latency})
	c := eksClient(s, noRetries)
	start := time.Now()
	if _, err := c.DescribeCluster(ctx(t), &eks.DescribeClusterInput{Name: aws.String(clusterName)}); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < latency {
		t.Errorf("call took %v, want at least %v", took, latency)
	}
}

// TestHangUntilClientGivesUp: a hung call ends when the caller's context
// does, with the caller's error.
func TestHangUntilClientGivesUp(t *testing.T) {
	s := newFake(t)
	s.SetFault(awsfake.AllOperations, awsfake.Fault{Hang: true})
	c := eksClient(s, noRetries)
	callCtx, cancel := context.WithTimeout(ctx(t), 100*time.Millisecond)
	defer cancel()
	_, err := c.DescribeCluster(callCtx, &eks.DescribeClusterInput{Name: aws.String(clusterName)})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want the context's deadline error, got %v", err)
	}
	// Close waits for the handler, so the counters are final after it.
	s.Close()
	if got := s.Calls()["DescribeCluster"][awsfake.OutcomeNoResponse]; got != 1 {
		t.Errorf("hung call counted %d times as %s, want 1; counts %v", got, awsfake.OutcomeNoResponse, s.Calls())
	}
}

// TestInFlight: a call a hang fault holds is in flight until its client
// gives up, and only then counted by Calls; a call answered at once leaves
// nothing in flight.
func TestInFlight(t *testing.T) {
	s := newFake(t)
	c := eksClient(s, noRetries)
	if _, err := c.DescribeCluster(ctx(t), &eks.DescribeClusterInput{Name: aws.String(clusterName)}); err != nil {
		t.Fatal(err)
	}
	if got := s.InFlight(); len(got) != 0 {
		t.Fatalf("in flight after an answered call: %v", got)
	}

	s.SetFault("ListAccessEntries", awsfake.Fault{Hang: true})
	callCtx, cancel := context.WithCancel(ctx(t))
	defer cancel()
	result := make(chan error, 1)
	go func() {
		_, err := c.ListAccessEntries(callCtx, &eks.ListAccessEntriesInput{ClusterName: aws.String(clusterName)})
		result <- err
	}()
	waitFor(t, "the hung call in flight", func() bool { return s.InFlight()["ListAccessEntries"] == 1 })
	if got := s.Calls().Total("ListAccessEntries"); got != 0 {
		t.Errorf("a call still held is counted %d times, want 0 until it ends", got)
	}
	// Another operation is not held, and not in flight once answered.
	if _, err := c.DescribeCluster(ctx(t), &eks.DescribeClusterInput{Name: aws.String(clusterName)}); err != nil {
		t.Fatal(err)
	}
	if got := s.InFlight(); len(got) != 1 || got["ListAccessEntries"] != 1 {
		t.Errorf("in flight: %v, want only the hung ListAccessEntries", got)
	}

	cancel()
	if err := <-result; !errors.Is(err, context.Canceled) {
		t.Fatalf("want the context's error, got %v", err)
	}
	waitFor(t, "the given-up call out of flight", func() bool { return len(s.InFlight()) == 0 })
	if got := s.Calls()["ListAccessEntries"][awsfake.OutcomeNoResponse]; got != 1 {
		t.Errorf("given-up call counted %d times as %s, want 1; counts %v", got, awsfake.OutcomeNoResponse, s.Calls())
	}
}

// waitFor polls cond until it holds, failing the test after callTimeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(callTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, callTimeout)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestCloseReleasesHungCalls: Close does not wait for a hung call; the
// call fails (the connection is dropped, not answered with an empty 200).
func TestCloseReleasesHungCalls(t *testing.T) {
	s := newFake(t)
	s.SetFault(awsfake.AllOperations, awsfake.Fault{Hang: true})
	c := eksClient(s, noRetries)

	sent := make(chan struct{})
	var once sync.Once
	trace := &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) { once.Do(func() { close(sent) }) }}
	result := make(chan error, 1)
	go func() {
		_, err := c.DescribeCluster(httptrace.WithClientTrace(ctx(t), trace), &eks.DescribeClusterInput{Name: aws.String(clusterName)})
		result <- err
	}()
	select {
	case <-sent:
	case <-time.After(callTimeout):
		t.Fatal("the request was never sent")
	}

	closed := make(chan struct{})
	go func() { s.Close(); close(closed) }()
	select {
	case err := <-result:
		if err == nil {
			t.Error("a call released by Close succeeded")
		}
	case <-time.After(callTimeout):
		t.Fatal("the hung call did not end when the server closed")
	}
	select {
	case <-closed:
	case <-time.After(callTimeout):
		t.Fatal("Close did not return")
	}
}

// TestEventualConsistency: a created entry stays out of List and Describe
// for the visibility delay, while a second create is already refused.
func TestEventualConsistency(t *testing.T) {
	clk := awsfake.NewClock()
	s := newFake(t, awsfake.WithClock(clk.Now))
	s.SetVisibilityDelay(5 * time.Second)
	c := eksClient(s, noRetries)
	describe := func() error {
		_, err := c.DescribeAccessEntry(ctx(t), &eks.DescribeAccessEntryInput{ClusterName: aws.String(clusterName), PrincipalArn: aws.String(roleARN)})
		return err
	}
	listed := func() []string {
		out, err := c.ListAccessEntries(ctx(t), &eks.ListAccessEntriesInput{ClusterName: aws.String(clusterName)})
		if err != nil {
			t.Fatal(err)
		}
		return out.AccessEntries
	}

	if err := create(roleARN, nil)(ctx(t), c, clusterName); err != nil {
		t.Fatal(err)
	}
	wantCode(t, describe(), "ResourceNotFoundException", 404)
	if got := listed(); len(got) != 0 {
		t.Errorf("listed %v before the delay passed", got)
	}
	wantCode(t, create(roleARN, nil)(ctx(t), c, clusterName), "ResourceInUseException", 409)
	if snap, _ := s.Snapshot(clusterName); len(snap) != 1 {
		t.Errorf("Snapshot should show the hidden entry, got %+v", snap)
	}

	clk.Advance(5 * time.Second)
	if err := describe(); err != nil {
		t.Errorf("after the delay: %v", err)
	}
	if got := listed(); !slices.Equal(got, []string{roleARN}) {
		t.Errorf("after the delay, listed %v", got)
	}
}

// TestConcurrentUse drives the fake from several clients while faults and
// counters are changed and read; run with -race it checks the locking.
func TestConcurrentUse(t *testing.T) {
	s := newFake(t)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			c := eksClient(s, standardRetryer(10))
			for i := range 10 {
				arn := "arn:aws:iam::" + account + ":role/w" + string(rune('a'+w)) + string(rune('a'+i))
				if err := s.SeedPrincipals(arn); err != nil {
					t.Error(err)
					return
				}
				if err := create(arn, nil)(ctx(t), c, clusterName); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for i := range 20 {
			s.SetFault(awsfake.AllOperations, awsfake.Fault{ThrottleRate: float64(i%3) / 10})
			_ = s.Calls()
			if _, err := s.Snapshot(clusterName); err != nil {
				t.Error(err)
			}
		}
		s.ClearFaults()
	})
	wg.Wait()
	if got := s.Calls()["CreateAccessEntry"][awsfake.OutcomeOK]; got != 40 {
		t.Errorf("%d entries created, want 40", got)
	}
	if snap, _ := s.Snapshot(clusterName); len(snap) != 40 {
		t.Errorf("snapshot has %d entries, want 40", len(snap))
	}
}
