package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/aws-auth-guardian/aws-auth-guardian/internal/testing/awsfake"
)

// The access entry target (issue 14: "a deleted aws-auth heals as fast as
// today with the target on and the EKS API slow or down"). The heal of 1,
// with bin/manager run with --eks-cluster-name against awsfake, the fake of
// EKS and IAM in internal/testing/awsfake, served by this process on a
// loopback port and spoken to by the operator's own AWS SDK through
// AWS_ENDPOINT_URL_EKS and AWS_ENDPOINT_URL_IAM. At the 100 mappings of the
// base: the heal with EKS answering while the operator makes the access
// entries of all mappings, then the EKS calls at rest, then the heal with
// every EKS and IAM call hanging.
const (
	eksCluster = "bench"
	// eksResync is shorter than the operator's default (1 m) so that the
	// window at rest holds several passes; the full resync keeps its
	// default (10 m), so that the only full pass of the step is the first.
	eksResync     = 5 * time.Second
	eksRestWindow = 20 * time.Second
	// The controller's name in controller-runtime's metrics.
	accessEntryController = "eks-access-entries"
	// What operator.go allows the operator against EKS and IAM together.
	eksQPS       = 5
	eksRateLimit = "5 calls/s, burst 10"
)

var eksArgs = []string{"--eks-cluster-name", eksCluster, "--access-entry-resync", eksResync.String()}

// eksEnv is the operator's environment with the target on: the bench's,
// without any AWS_ variable of its own (a profile or real credentials must
// reach neither the fake nor AWS), and the SDK's default chain pointed at
// the fake.
func eksEnv(url string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") {
			env = append(env, kv)
		}
	}
	return append(env,
		"AWS_REGION="+awsfake.DefaultRegion,
		"AWS_ACCESS_KEY_ID=AKIDBENCH",
		"AWS_SECRET_ACCESS_KEY=bench",
		"AWS_ENDPOINT_URL_EKS="+url,
		"AWS_ENDPOINT_URL_IAM="+url,
		"AWS_CONFIG_FILE=/dev/null",
		"AWS_SHARED_CREDENTIALS_FILE=/dev/null",
		"AWS_EC2_METADATA_DISABLED=true",
	)
}

// The operations that change access entries.
// eksRestReads are the calls of a pass with nothing to do.
// (DescribeCluster too, once per full resync.)
var eksRestReads = []string{"ListAccessEntries", "DescribeAccessEntry", "ListAssociatedAccessPolicies", "DescribeCluster"}

var eksWrites = []string{"CreateAccessEntry", "UpdateAccessEntry", "DeleteAccessEntry", "AssociateAccessPolicy", "DisassociateAccessPolicy", "TagResource", "UntagResource"}

func (b *bench) measureAccessEntries(ctx context.Context, rep *report, reps int) (err error) {
	hash := b.expectedHash()
	if err := b.waitSettled(ctx, hash, time.Minute); err != nil {
		return err
	}
	fake, n, err := b.startFake()
	if err != nil {
		return err
	}
	mode := b.op.mode
	b.eks = fake
	defer func() {
		// The steps that follow run with the target off, as before.
		// Stopping this operator also ends the call a hang holds.
		b.eks = nil
		err = errors.Join(err, b.startOperator(ctx, mode))
		if err == nil {
			err = b.waitSettled(ctx, b.expectedHash(), time.Minute)
		}
		fake.Close()
	}()
	started := time.Now()
	if err := b.startOperator(ctx, mode); err != nil {
		return err
	}
	if err := b.waitSettled(ctx, hash, time.Minute); err != nil {
		return err
	}

	// EKS answering, while the operator makes the entries of all mappings
	// (rate limited, so its access entry worker is busy for tens of
	// seconds): the heals come while it works.
	logf("heal with the access entry target on, EKS answering")
	beforeHeals := fake.Calls()
	busy := 0
	answering, err := b.healWith(ctx, hash, reps, func() {
		if b.accessEntryWorkers() > 0 {
			busy++
		}
	})
	if err != nil {
		return fmt.Errorf("EKS answering: %w", err)
	}
	duringHeals := fake.Calls().Since(beforeHeals)

	logf("waiting for the access entries of %d mappings, then %s at rest", n, eksRestWindow)
	restAt, err := b.waitAccessEntriesAtRest(ctx, fake, n, 4*time.Minute)
	if err != nil {
		return err
	}
	sync := fake.Calls()
	rest, err := b.countAtRest(ctx, fake)
	if err != nil {
		return err
	}

	// Every EKS and IAM call hangs: the access entry worker is blocked in
	// its next call for as long as the heals go on.
	logf("heal with the access entry target on, every EKS and IAM call hanging")
	fake.SetFault(awsfake.AllOperations, awsfake.Fault{Hang: true})
	if err := pollUntil(ctx, 3*eksResync, func() bool { return len(fake.InFlight()) > 0 }); err != nil {
		return fmt.Errorf("no EKS call began within %s of the hang: %w", 3*eksResync, err)
	}
	held, beforeHang := fake.InFlight(), fake.Calls()
	hanging, err := b.healWith(ctx, hash, reps, nil)
	if err != nil {
		return fmt.Errorf("EKS hanging: %w", err)
	}
	stillHeld, answeredInHang := fake.InFlight(), fake.Calls().Since(beforeHang)

	b.reportAccessEntries(rep, accessEntryRun{
		n: n, reps: reps, answering: answering, busy: busy, duringHeals: duringHeals,
		syncTook: restAt.Sub(started), sync: sync, rest: rest,
		hanging: hanging, held: held, stillHeld: stillHeld, answeredInHang: answeredInHang,
	})
	return nil
}

// startFake starts the fake with the cluster in API_AND_CONFIG_MAP mode
// (both aws-auth and access entries in force, as during a migration) and
// IAM holding every principal the mappings name.
func (b *bench) startFake() (*awsfake.Server, int, error) {
	fake := awsfake.New()
	if _, err := fake.SeedCluster(awsfake.Cluster{Name: eksCluster, AuthenticationMode: awsfake.ModeAPIAndConfigMap}); err != nil {
		fake.Close()
		return nil, 0, err
	}
	b.mu.Lock()
	var arns []string
	for _, m := range b.mappings {
		if m.ARN != "" {
			arns = append(arns, m.ARN)
		}
	}
	b.mu.Unlock()
	if err := fake.SeedPrincipals(arns...); err != nil {
		fake.Close()
		return nil, 0, err
	}
	return fake, len(arns), nil
}

// healWith is the heal of 1, from rest, reps times.
func (b *bench) healWith(ctx context.Context, hash string, reps int, before func()) (healRuns, error) {
	if err := b.waitQuiet(ctx, 2*time.Second, 3*time.Minute); err != nil {
		return healRuns{}, err
	}
	return b.healReps(ctx, hash, reps, before)
}

// accessEntryWorkers is how many workers of the access entry controller
// are in a pass (one at most), per the operator's metrics; -1 when the
// scrape fails.
func (b *bench) accessEntryWorkers() float64 {
	samples, err := b.op.scrape()
	if err != nil {
		return -1
	}
	return sum(samples, "controller_runtime_active_workers", func(l map[string]string) bool { return l["controller"] == accessEntryController })
}

// waitAccessEntriesAtRest waits until the fake holds an entry for each of
// the n mappings and the operator's passes only read: between two looks,
// with its worker idle at the second, one pass or more ran and nothing but
// ListAccessEntries and the describes of the entries whose turn it was to
// be checked was called (no write, no IAM call).
func (b *bench) waitAccessEntriesAtRest(ctx context.Context, fake *awsfake.Server, n int, timeout time.Duration) (time.Time, error) {
	var last awsfake.CallCounts
	var at time.Time
	entries := 0
	err := pollUntil(ctx, timeout, func() bool {
		time.Sleep(200 * time.Millisecond)
		snap, _ := fake.Snapshot(eksCluster)
		entries = len(snap)
		c := fake.Calls()
		if entries != n {
			last = nil
			return false
		}
		// A pass under way: the next idle look tells what it called. (A
		// pass under faults takes seconds of retries; forgetting the last
		// look here would wait for a pass shorter than one poll.)
		if b.accessEntryWorkers() != 0 {
			return false
		}
		if last == nil {
			last = c
			return false
		}
		d := c.Since(last)
		ops := d.Operations()
		if len(ops) == 0 {
			return false // no pass yet since the last look
		}
		if slices.ContainsFunc(ops, func(op string) bool { return !slices.Contains(eksRestReads, op) }) {
			last = c
			return false
		}
		at = time.Now()
		return true
	})
	if err != nil {
		return at, fmt.Errorf("the access entries did not come to rest (%d entries of %d): %w", entries, n, err)
	}
	return at, nil
}

// atRest is what the window at rest counted.
type atRest struct {
	window   time.Duration
	calls    awsfake.CallCounts
	passes   float64
	requests map[string]float64 // the operator's Kubernetes API requests, by method and code
}

func (b *bench) countAtRest(ctx context.Context, fake *awsfake.Server) (atRest, error) {
	r := atRest{window: eksRestWindow}
	passes := func(s []series) float64 {
		return sum(s, "controller_runtime_reconcile_total", func(l map[string]string) bool { return l["controller"] == accessEntryController })
	}
	requests := func(s []series) map[string]float64 {
		out := map[string]float64{}
		for _, x := range s {
			if x.name == requestsMetric {
				out[x.labels["method"]+" "+x.labels["code"]] += x.value
			}
		}
		return out
	}
	before, err := b.op.scrape()
	if err != nil {
		return r, err
	}
	from := fake.Calls()
	select {
	case <-ctx.Done():
		return r, ctx.Err()
	case <-time.After(r.window):
	}
	r.calls = fake.Calls().Since(from)
	after, err := b.op.scrape()
	if err != nil {
		return r, err
	}
	r.passes = passes(after) - passes(before)
	r.requests = requests(after)
	for k, v := range requests(before) {
		r.requests[k] -= v
	}
	maps.DeleteFunc(r.requests, func(_ string, v float64) bool { return v == 0 })
	return r, nil
}

// byOperation writes counts as "Op: n, Op: n", each scaled by scale, with
// the outcomes other than OK in brackets.
func byOperation(c awsfake.CallCounts, scale float64) string {
	if len(c) == 0 {
		return "none"
	}
	var parts []string
	for _, op := range c.Operations() {
		part := fmt.Sprintf("%s: %.0f", op, float64(c.Total(op))*scale)
		var other []string
		for _, outcome := range slices.Sorted(maps.Keys(c[op])) {
			if outcome != awsfake.OutcomeOK {
				other = append(other, fmt.Sprintf("%s %.0f", outcome, float64(c[op][outcome])*scale))
			}
		}
		if len(other) > 0 {
			part += " (" + strings.Join(other, ", ") + ")"
		}
		parts = append(parts, part)
	}
	return strings.Join(parts, ", ")
}

func totalCalls(c awsfake.CallCounts) int {
	n := 0
	for op := range c {
		n += c.Total(op)
	}
	return n
}

// answeredCalls is totalCalls without the calls that ended unanswered (a
// hung attempt the operator's timeout gave up on).
func answeredCalls(c awsfake.CallCounts) int {
	n := totalCalls(c)
	for op := range c {
		n -= c[op][awsfake.OutcomeNoResponse]
	}
	return n
}

type accessEntryRun struct {
	n, reps        int
	answering      healRuns
	busy           int
	duringHeals    awsfake.CallCounts
	syncTook       time.Duration
	sync           awsfake.CallCounts
	rest           atRest
	hanging        healRuns
	held           map[string]int
	stillHeld      map[string]int
	answeredInHang awsfake.CallCounts
}

func (b *bench) reportAccessEntries(rep *report, r accessEntryRun) {
	const heal = "7. Heal: DELETE (finalizer bypassed) → complete aws-auth seen by a watcher, "
	off := "access entry target off (the figure of 1, same run)"
	if b.healAtRest != nil {
		rep.latency(secAccess, heal+off, *b.healAtRest)
	}
	on := summarize(r.answering.heals)
	hung := summarize(r.hanging.heals)
	rep.latency(secAccess, heal+"target on, EKS answering (during the operator's first access entry pass)", on)
	rep.latency(secAccess, "7. … of which DELETED seen → ADDED seen (no aws-auth), target on, EKS answering", summarize(r.answering.gaps))
	rep.latency(secAccess, heal+"target on, every EKS and IAM call hanging", hung)
	rep.latency(secAccess, "7. … of which DELETED seen → ADDED seen (no aws-auth), target on, every call hanging", summarize(r.hanging.gaps))

	rep.figure(secAccess, "7. target on, EKS answering: the access entry reconciler during the heals",
		fmt.Sprintf("in a pass at %d of %d DELETEs (controller_runtime_active_workers); EKS and IAM answered %d calls during the %d heals (%s)",
			r.busy, r.reps, totalCalls(r.duringHeals), r.reps, byOperation(r.duringHeals, 1)))
	held := fmt.Sprintf("held %s from before the first DELETE; after the last one still held %s, and %d calls answered in between",
		byOperation(inFlightCounts(r.held), 1), byOperation(inFlightCounts(r.stillHeld), 1), answeredCalls(r.answeredInHang))
	heldThroughout := len(r.stillHeld) > 0 && answeredCalls(r.answeredInHang) == 0
	if !heldThroughout {
		held = "NOT held throughout, so these heals do not show the hang: " + held
	}
	rep.figure(secAccess, "7. target on, every call hanging: the access entry reconciler during the heals", held)
	rep.figure(secAccess, fmt.Sprintf("7. first access entries of %d mappings", r.n),
		fmt.Sprintf("%s from the operator's start until its passes only read (every entry made and described), at its rate limit of %s; %d calls: %s",
			ms(r.syncTook), eksRateLimit, totalCalls(r.sync), byOperation(r.sync, 1)))
	perMinute := float64(time.Minute) / float64(r.rest.window)
	writes := 0
	for _, w := range eksWrites {
		writes += r.rest.calls.Total(w)
	}
	pages := (r.n + 99) / 100
	rep.figure(secAccess, fmt.Sprintf("7. EKS and IAM calls per minute at rest, %d mappings", r.n),
		fmt.Sprintf("%.0f with --access-entry-resync %s (%s; %.0f passes in %s, %d writes); at the default resync of 1 m that is %d ListAccessEntries and %d describes (2 calls each) a minute",
			float64(totalCalls(r.rest.calls))*perMinute, eksResync, byOperation(r.rest.calls, perMinute), r.rest.passes, r.rest.window, writes, pages, (r.n*60+599)/600))
	var requests []string
	total := 0.0
	for _, k := range slices.Sorted(maps.Keys(r.rest.requests)) {
		requests = append(requests, fmt.Sprintf("%s: %.0f", k, r.rest.requests[k]*perMinute))
		total += r.rest.requests[k]
	}
	rep.figure(secAccess, "7. operator API requests per minute at rest, target on", fmt.Sprintf("%.0f (by method and code: %s), with --access-entry-resync %s", total*perMinute, strings.Join(requests, ", "), eksResync))

	rep.note(secAccess, "- bin/manager restarted with `--eks-cluster-name %s --access-entry-resync %s` (full resync at its default, 10 m), its AWS SDK pointed by `AWS_ENDPOINT_URL_EKS` and `AWS_ENDPOINT_URL_IAM` at awsfake (internal/testing/awsfake, EKS REST-JSON and IAM query protocol) served by the bench process on 127.0.0.1, with the cluster in API_AND_CONFIG_MAP mode and IAM holding every mapped principal. %d mappings; each setting %d heals timed as in 1, each from rest (the aws-auth worker idle). Afterwards the operator is restarted with the target off for the steps that follow.", eksCluster, eksResync, r.n, r.reps)
	rep.note(secAccess, "- **EKS answering**: the heals start right after the operator does, while its access entry reconciler makes the entries of all %d mappings at its rate limit (%s): a pass that asks IAM for each role's ARN (GetRole: aws-auth names roles without their path) and creates each entry, then one that describes each new entry. Its worker was in a pass at %d of the %d DELETEs; the calls answered meanwhile (a row above) say which part of the pass the heals fell in.", r.n, eksRateLimit, r.busy, r.reps)
	rep.note(secAccess, "- **Every call hanging**: `SetFault(AllOperations, Hang)` holds every EKS and IAM request unanswered; the heals begin once a call is held (the next resync's ListAccessEntries), so the access entry reconciler is blocked inside that call for all of them. Each attempt ends after 30 s (eksapi.DefaultAttemptTimeout) and is retried, into the same hang: calls that ended unanswered do not count as answered.")
	rep.note(secAccess, "- At rest: %s after the passes only read. Each pass lists the entries (ceil(N/100) calls) and describes, with its policies, the share of them whose turn it is, ceil(N x resync / full resync): at a 5 s resync and the default full resync of 10 m, 1 entry of %d per pass, every entry once in 10 m; at the default resync of 1 m, %d per pass (2 calls each). The envtest TestAccessEntryCallsAtRest holds the counts exactly. DescribeCluster comes once per full resync and none falls in this window.",
		r.rest.window, r.n, (r.n*60+599)/600)

	why := func(d dist) string {
		s := over(d.P99, 50*time.Millisecond)
		if b.healAtRest != nil {
			s += fmt.Sprintf("With the target off (1) p99 was %s in this run. ", ms(b.healAtRest.P99))
		}
		return s
	}
	rep.target("7. heal latency p99, access entry target on, EKS answering (the target of 1)", "< 50 ms", fmt.Sprintf("p99 %s (p50 %s, max %s)", ms(on.P99), ms(on.P50), ms(on.Max)), on.P99 < 50*time.Millisecond, why(on))
	hungWhy := why(hung)
	if !heldThroughout {
		hungWhy += "The EKS calls were not held throughout the heals, so the figure does not show the hang. "
	}
	rep.target("7. heal latency p99, access entry target on, every EKS call hanging (the target of 1)", "< 50 ms", fmt.Sprintf("p99 %s (p50 %s, max %s)", ms(hung.P99), ms(hung.P50), ms(hung.Max)), hung.P99 < 50*time.Millisecond && heldThroughout, hungWhy)
	rep.target("7. EKS writes per minute at rest", "0", fmt.Sprintf("%d writes in %s", writes, r.rest.window), writes == 0, fmt.Sprintf("Writes at rest: %s.", byOperation(r.rest.calls, 1)))
}

// inFlightCounts puts InFlight's counts in the shape byOperation reads.
func inFlightCounts(m map[string]int) awsfake.CallCounts {
	out := awsfake.CallCounts{}
	for op, n := range m {
		out[op] = map[string]int{awsfake.OutcomeOK: n}
	}
	return out
}
