package controllers

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/aws-auth-guardian/aws-auth-guardian/internal/eksapi"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/testing/awsfake"
)

func TestChecksPerPass(t *testing.T) {
	for _, c := range []struct {
		name         string
		entries      int
		resync, full time.Duration
		rate         float64
		want         int
		coversAll    bool
	}{
		{"few entries: all within the full resync", 100, time.Minute, 10 * time.Minute, 5, 10, true},
		{"the most the default rate checks within the full resync", 300, time.Minute, 10 * time.Minute, 5, 30, true},
		{"3,000 at the default rate: a fifth of it", 3000, time.Minute, 10 * time.Minute, 5, 30, false},
		{"3,000 at a raised rate", 3000, time.Minute, 10 * time.Minute, 50, 300, true},
		{"no rate given: unbounded", 3000, time.Minute, 10 * time.Minute, 0, 300, true},
		{"a budget under one check: still one", 3000, time.Second, 10 * time.Minute, 5, 1, false},
		{"no entries", 0, time.Minute, 10 * time.Minute, 5, 0, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := &AccessEntryReconciler{Resync: c.resync, FullResync: c.full, APIRate: c.rate}
			got := r.checksPerPass(c.entries)
			if got != c.want {
				t.Fatalf("checksPerPass(%d) = %d, want %d", c.entries, got, c.want)
			}
			passes := int(c.full / c.resync)
			if within := got*passes >= c.entries; within != c.coversAll {
				t.Errorf("%d checks in each of %d passes cover %d entries within the full resync: %t, want %t", got, passes, c.entries, within, c.coversAll)
			}
		})
	}
}

// The checks never take more than checkShare of the rate limit, whatever
// the number of entries, except the one check a pass always makes.
func TestChecksStayWithinTheirShare(t *testing.T) {
	for _, rate := range []float64{0.5, 1, 5, 20, 100} {
		for _, resync := range []time.Duration{time.Second, 10 * time.Second, time.Minute, 5 * time.Minute} {
			r := &AccessEntryReconciler{Resync: resync, FullResync: 10 * resync, APIRate: rate}
			for _, n := range []int{1, 10, 299, 300, 301, 1000, 3000, 10000} {
				checks := r.checksPerPass(n)
				perSecond := float64(checks*callsPerCheck) / resync.Seconds()
				if checks > 1 && perSecond > checkShare*rate {
					t.Errorf("rate %v, resync %v, %d entries: %d checks a pass are %.2f calls/s, over %v of the rate", rate, resync, n, checks, perSecond, checkShare)
				}
				if checks < 1 {
					t.Errorf("rate %v, resync %v, %d entries: no check at all", rate, resync, n)
				}
			}
		}
	}
}

// A mapping's change stops the checks of entries in place (the plan goes
// ahead with what was described before), but never the describes of new
// entries, which the plan needs.
func TestObserveChecksStopAtMappingChange(t *testing.T) {
	const cluster = "dev"
	fake := awsfake.New()
	t.Cleanup(fake.Close)
	if _, err := fake.SeedCluster(awsfake.Cluster{Name: cluster}); err != nil {
		t.Fatal(err)
	}
	seed := func(i int) {
		t.Helper()
		arn := fmt.Sprintf("arn:aws:iam::%s:role/r%02d", awsfake.DefaultAccountID, i)
		if err := fake.SeedPrincipals(arn); err != nil {
			t.Fatal(err)
		}
		if _, err := fake.SeedEntry(cluster, awsfake.AccessEntry{PrincipalARN: arn}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 20 {
		seed(i)
	}
	eks, err := eksapi.New(context.Background(), eksapi.Options{
		ClusterName: cluster,
		RateLimit:   eksapi.RateLimit{QPS: 1000, Burst: 1000},
		Registerer:  prometheus.NewRegistry(),
		LoadOptions: fake.SDKConfig(),
	})
	if err != nil {
		t.Fatal(err)
	}
	// Half the entries are checked each pass.
	r := &AccessEntryReconciler{EKS: eks, Resync: time.Minute, FullResync: 2 * time.Minute}
	describes := func(changed bool) int {
		t.Helper()
		r.mappingChanged.Store(changed)
		before := fake.Calls()
		observed, err := r.observe(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(observed) != len(r.described) {
			t.Fatalf("observed %d entries, described %d", len(observed), len(r.described))
		}
		return fake.Calls().Since(before).Total("DescribeAccessEntry")
	}
	if got := describes(false); got != 20 {
		t.Fatalf("first pass described %d entries, want all 20 (new)", got)
	}
	if got := describes(false); got != 10 {
		t.Fatalf("a pass at rest described %d entries, want its turn of 10", got)
	}
	if got := describes(true); got != 0 {
		t.Fatalf("with a mapping changed a pass described %d entries, want none", got)
	}
	seed(20)
	if got := describes(true); got != 1 {
		t.Fatalf("with a mapping changed and a new entry a pass described %d entries, want the new one only", got)
	}
	if got := describes(false); got != 11 {
		t.Fatalf("the next pass at rest described %d entries, want its turn of 11", got)
	}
}
