package controllers

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/accessentry"
)

const (
	reportAdminARN   = "arn:aws:iam::111122223333:role/admins"
	reportAliceARN   = "arn:aws:iam::111122223333:user/alice"
	reportBobARN     = "arn:aws:iam::111122223333:user/bob"
	reportCreatorARN = "arn:aws:iam::111122223333:role/creator"
	clusterAdminARN  = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
)

func reportEntry(arn string, groups ...string) accessentry.Entry {
	e := accessentry.Entry{PrincipalARN: arn, Type: iamv1alpha1.AccessEntryStandard, Username: arn[strings.LastIndex(arn, "/")+1:], KubernetesGroups: groups}
	if arn == reportAdminARN || arn == reportCreatorARN {
		e.Policies = []accessentry.Policy{{ARN: clusterAdminARN}}
	}
	return e
}

func ours(mapping string, e accessentry.Entry) accessentry.Observed {
	return accessentry.Observed{Entry: e, Tags: map[string]string{accessentry.MappingTag: mapping}}
}

func wants(name string, e accessentry.Entry) accessentry.Desired {
	return accessentry.Desired{Name: name, UID: "uid-" + name, Created: time.Unix(0, 0), Kind: accessentry.DesiredEntry, Entry: e}
}

// reportPass plans desired over observed, as Reconcile does, and says that
// every step ran.
func reportPass(observed []accessentry.Observed, deleting []string, desired ...accessentry.Desired) accessEntryPass {
	listed := map[string]listedMapping{}
	for _, d := range desired {
		listed[d.Name] = listedMapping{uid: types.UID(d.UID), generation: 1}
	}
	for _, name := range deleting {
		listed[name] = listedMapping{uid: types.UID("uid-" + name), generation: 1, deleting: true}
	}
	plan := accessentry.Plan(desired, observed, accessentry.Guards{MaxRemovedShare: 0.5})
	return accessEntryPass{observed: observed, desired: desired, listed: listed, plan: plan, done: len(plan.Steps)}
}

// The report of the access entry reconciler tells each change once: what
// it created, adopted, updated, deleted, and restored after someone else
// changed it (counted by cause); a guard's hold is one Warning for as long
// as it holds, with the blocked gauge 1; nothing at all when a resync has
// nothing to do. Not parallel: the metrics are the process's.
func TestAccessEntryReportTellsEachChangeOnce(t *testing.T) {
	rec := events.NewFakeRecorder(100)
	r := &AccessEntryReconciler{Recorder: rec}
	ctx := context.Background()
	admins, alice := wants("admins", reportEntry(reportAdminARN, "ops")), wants("alice", reportEntry(reportAliceARN, "dev"))
	synced := []accessentry.Observed{ours("admins", admins.Entry), ours("alice", alice.Entry)}
	missing := testutil.ToFloat64(accessEntryDriftRestorationsTotal.WithLabelValues(driftMissing))
	changed := testutil.ToFloat64(accessEntryDriftRestorationsTotal.WithLabelValues(driftChanged))
	expect := func(step string, want ...string) {
		t.Helper()
		got := drain(rec)
		slices.Sort(got)
		if len(got) != len(want) {
			t.Fatalf("%s: events %q, want %d starting %q", step, got, len(want), want)
		}
		for i := range want {
			if !strings.HasPrefix(got[i], want[i]) {
				t.Fatalf("%s: event %q, want it to start %q", step, got[i], want[i])
			}
		}
	}
	drift := func(step string, wantMissing, wantChanged float64) {
		t.Helper()
		if got := testutil.ToFloat64(accessEntryDriftRestorationsTotal.WithLabelValues(driftMissing)) - missing; got != wantMissing {
			t.Errorf("%s: missing restorations %v, want %v", step, got, wantMissing)
		}
		if got := testutil.ToFloat64(accessEntryDriftRestorationsTotal.WithLabelValues(driftChanged)) - changed; got != wantChanged {
			t.Errorf("%s: changed restorations %v, want %v", step, got, wantChanged)
		}
	}

	r.report(ctx, reportPass(nil, nil, admins, alice))
	expect("first pass", "Normal Created Created the access entry of "+reportAdminARN+" (Create, Associate AmazonEKSClusterAdminPolicy)",
		"Normal Created Created the access entry of "+reportAliceARN+" (Create)")
	r.report(ctx, reportPass(synced, nil, admins, alice))
	r.report(ctx, reportPass(synced, nil, admins, alice))
	expect("resyncs")
	if got := testutil.ToFloat64(accessEntriesGauge.WithLabelValues(entryStateManaged)); got != 2 {
		t.Errorf("managed entries %v, want 2", got)
	}

	r.report(ctx, reportPass(synced[:1], nil, admins, alice))
	expect("alice's entry deleted out of band", "Normal Restored Restored the access entry of "+reportAliceARN+" (Create)")
	drift("deleted out of band", 1, 0)
	r.report(ctx, reportPass(synced, nil, admins, alice))
	r.report(ctx, reportPass([]accessentry.Observed{synced[0], ours("alice", reportEntry(reportAliceARN, "other"))}, nil, admins, alice))
	expect("alice's groups changed out of band", "Normal Restored Restored the access entry of "+reportAliceARN+" (Update)")
	drift("changed out of band", 1, 1)

	r.report(ctx, reportPass(synced, nil, admins, alice))
	aliceOps := wants("alice", reportEntry(reportAliceARN, "ops"))
	r.report(ctx, reportPass(synced, nil, admins, aliceOps))
	expect("alice's mapping changed", "Normal Updated Updated the access entry of "+reportAliceARN+" (Update)")
	drift("the mapping changed", 1, 1)

	// Deleting admins would leave no cluster admin: held, warned once.
	aliceSynced := ours("alice", aliceOps.Entry)
	heldPass := reportPass([]accessentry.Observed{synced[0], aliceSynced}, []string{"admins"}, aliceOps)
	if len(heldPass.plan.Held) == 0 {
		t.Fatalf("the deletion of the last cluster admin is not held: %+v", heldPass.plan)
	}
	r.report(ctx, heldPass)
	r.report(ctx, heldPass)
	expect("the last cluster admin's deletion", "Warning "+accessentry.RefusedClusterAdmin+" To run this plan anyway: kubectl annotate iamidentitymapping admins --overwrite "+
		iamv1alpha1.AllowAccessEntryPlanAnnotation+"="+heldPass.plan.RefusedHash+". Held Delete of the access entry of "+reportAdminARN+": the plan leaves no access entry")
	if got := testutil.ToFloat64(accessEntryBlocked); got != 1 {
		t.Errorf("blocked %v while a guard holds, want 1", got)
	}
	if got := testutil.ToFloat64(accessEntriesGauge.WithLabelValues(entryStateBlocked)); got != 1 {
		t.Errorf("blocked mappings %v, want 1", got)
	}

	// The creator's entry is a cluster admin too: the deletion goes; bob's
	// untagged entry equals his translation, and is adopted.
	creator := accessentry.Observed{Entry: reportEntry(reportCreatorARN)}
	bob := wants("bob", reportEntry(reportBobARN, "dev"))
	r.report(ctx, reportPass([]accessentry.Observed{synced[0], aliceSynced, creator, {Entry: bob.Entry}}, []string{"admins"}, aliceOps, bob))
	expect("the creator admins", "Normal Adopted Adopted the access entry of "+reportBobARN+" (Tag)",
		"Normal Deleted Deleted the access entry of "+reportAdminARN+" (Delete)")
	if got := testutil.ToFloat64(accessEntryBlocked); got != 0 {
		t.Errorf("blocked %v once nothing is held, want 0", got)
	}
	if got := testutil.ToFloat64(accessEntriesGauge.WithLabelValues(entryStateUnmanaged)); got != 2 {
		t.Errorf("unmanaged entries %v, want 2 (the creator's and bob's, as listed)", got)
	}
	drift("deletion and adoption", 1, 1)
}

// Only the annotation of a mapping the plan holds, set to the plan's own
// hash, allows it: not a stale hash, not another mapping's annotation.
func TestAllowedByTheHeldMappingOnly(t *testing.T) {
	t.Parallel()
	admins, alice := wants("admins", reportEntry(reportAdminARN, "ops")), wants("alice", reportEntry(reportAliceARN, "dev"))
	plan := reportPass([]accessentry.Observed{ours("admins", admins.Entry), ours("alice", alice.Entry)}, []string{"admins"}, alice).plan
	if plan.RefusedHash == "" {
		t.Fatalf("the deletion of the last cluster admin is not refused: %+v", plan)
	}
	for _, c := range []struct {
		name  string
		allow map[string]string
		want  bool
	}{
		{"none", nil, false},
		{"the held mapping, this plan", map[string]string{"admins": plan.RefusedHash}, true},
		{"the held mapping, another plan", map[string]string{"admins": strings.Repeat("0", 64)}, false},
		{"a mapping not held", map[string]string{"alice": plan.RefusedHash}, false},
	} {
		if got := allowedBy(plan, c.allow); got != c.want {
			t.Errorf("%s: allowed %t, want %t", c.name, got, c.want)
		}
	}
	if allowedBy(accessentry.Sync{}, map[string]string{"admins": ""}) {
		t.Error("a plan no guard refused is allowed")
	}
}
