package controllers

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/managed"
)

func TestDesiredStatus(t *testing.T) {
	t.Parallel()
	roleEntry := awsauth.Entry{Section: awsauth.MapRoles, Identity: "arn:aws:iam::111122223333:role/admins", Username: "admin"}
	accountEntry := awsauth.Entry{Section: awsauth.MapAccounts, Identity: "111122223333"}
	tests := []struct {
		name        string
		outcome     awsauth.Outcome
		renderErr   error
		refusal     *awsauth.Refusal
		served      []awsauth.Entry
		wantReady   metav1.ConditionStatus
		wantReason  string
		wantMessage string
		wantStalled bool
		wantARN     string
		wantSection iamv1alpha1.Section
	}{
		{name: "applied role", outcome: awsauth.Outcome{Entry: roleEntry}, served: []awsauth.Entry{accountEntry, roleEntry},
			wantReady: metav1.ConditionTrue, wantReason: "Applied", wantMessage: "mapRoles",
			wantARN: "arn:aws:iam::111122223333:role/admins", wantSection: "mapRoles"},
		{name: "applied account has no ARN", outcome: awsauth.Outcome{Entry: accountEntry}, served: []awsauth.Entry{accountEntry},
			wantReady: metav1.ConditionTrue, wantReason: "Applied", wantMessage: "mapAccounts", wantSection: "mapAccounts"},
		{name: "invalid", outcome: awsauth.Outcome{Err: errors.New("account ID \"1\" must be exactly 12 digits")},
			wantReady: metav1.ConditionFalse, wantReason: "Invalid", wantMessage: "12 digits", wantStalled: true},
		{name: "conflict names the winner", outcome: awsauth.Outcome{Entry: roleEntry, ShadowedBy: "older-admins"}, served: []awsauth.Entry{roleEntry},
			wantReady: metav1.ConditionFalse, wantReason: "Conflict", wantMessage: "older-admins", wantStalled: true,
			wantARN: "arn:aws:iam::111122223333:role/admins", wantSection: "mapRoles"},
		{name: "render refused", outcome: awsauth.Outcome{Entry: roleEntry}, renderErr: errors.New("the render is 2000000 bytes"),
			wantReady: metav1.ConditionFalse, wantReason: "RenderFailed", wantMessage: "2000000 bytes", wantStalled: true,
			wantARN: "arn:aws:iam::111122223333:role/admins", wantSection: "mapRoles"},
		{name: "still live although the render was refused", outcome: awsauth.Outcome{Entry: roleEntry}, renderErr: errors.New("too big"), served: []awsauth.Entry{roleEntry},
			wantReady: metav1.ConditionTrue, wantReason: "Applied", wantMessage: "mapRoles",
			wantARN: "arn:aws:iam::111122223333:role/admins", wantSection: "mapRoles"},
		{name: "too large", outcome: awsauth.Outcome{Entry: roleEntry, TooLarge: &awsauth.Overflow{EntryBytes: 4321, FreeBytes: 1234}}, served: []awsauth.Entry{accountEntry},
			wantReady: metav1.ConditionFalse, wantReason: "TooLarge", wantStalled: true,
			wantMessage: "The entry is 4321 bytes and does not fit: the older or already applied mappings leave 1234 of the 1048576 bytes a ConfigMap may hold, so it is left out of kube-system/aws-auth. Shorten its groups or username, or delete other mappings",
			wantARN:     "arn:aws:iam::111122223333:role/admins", wantSection: "mapRoles"},
		{name: "too large but still live", outcome: awsauth.Outcome{Entry: roleEntry, TooLarge: &awsauth.Overflow{EntryBytes: 4321, FreeBytes: 1234}}, refusal: &awsauth.Refusal{Reason: awsauth.RefusedNodes, Message: "nodes could no longer join"}, served: []awsauth.Entry{roleEntry},
			wantReady: metav1.ConditionTrue, wantReason: "Applied", wantMessage: "mapRoles",
			wantARN: "arn:aws:iam::111122223333:role/admins", wantSection: "mapRoles"},
		{name: "blocked by a guard", outcome: awsauth.Outcome{Entry: roleEntry}, refusal: &awsauth.Refusal{Reason: awsauth.RefusedNodes, Message: "nodes could no longer join"},
			wantReady: metav1.ConditionFalse, wantReason: "Blocked", wantMessage: "nodes could no longer join", wantStalled: true,
			wantARN: "arn:aws:iam::111122223333:role/admins", wantSection: "mapRoles"},
		{name: "an older spec is live, not this one", outcome: awsauth.Outcome{Entry: roleEntry}, refusal: &awsauth.Refusal{Reason: awsauth.RefusedTooManyRemoved, Message: "removes 6 of 10"},
			served:    []awsauth.Entry{{Section: awsauth.MapRoles, Identity: roleEntry.Identity, Username: "old-name"}},
			wantReady: metav1.ConditionFalse, wantReason: "Blocked", wantMessage: "removes 6 of 10", wantStalled: true,
			wantARN: "arn:aws:iam::111122223333:role/admins", wantSection: "mapRoles"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := &iamv1alpha1.IAMIdentityMapping{ObjectMeta: metav1.ObjectMeta{Name: "m", Generation: 3}}
			status := desiredStatus(m, tc.outcome, testOutcome(tc.served, tc.renderErr, tc.refusal))

			if status.ObservedGeneration != 3 {
				t.Errorf("observedGeneration = %d, want 3", status.ObservedGeneration)
			}
			if status.CanonicalARN != tc.wantARN || status.Section != tc.wantSection {
				t.Errorf("canonicalARN, section = %q, %q; want %q, %q", status.CanonicalARN, status.Section, tc.wantARN, tc.wantSection)
			}
			ready := meta.FindStatusCondition(status.Conditions, "Ready")
			if ready == nil || ready.Status != tc.wantReady || ready.Reason != tc.wantReason || ready.ObservedGeneration != 3 {
				t.Fatalf("Ready = %+v, want %s/%s at generation 3", ready, tc.wantReady, tc.wantReason)
			}
			if !strings.Contains(ready.Message, tc.wantMessage) {
				t.Errorf("Ready message %q does not contain %q", ready.Message, tc.wantMessage)
			}
			if got := meta.IsStatusConditionTrue(status.Conditions, "Stalled"); got != tc.wantStalled {
				t.Errorf("Stalled = %v, want %v", got, tc.wantStalled)
			}
		})
	}
}

func TestDesiredStatusKeepsTransitionTimes(t *testing.T) {
	t.Parallel()
	entry := awsauth.Entry{Section: awsauth.MapRoles, Identity: "arn:aws:iam::111122223333:role/admins", Username: "admin"}
	m := &iamv1alpha1.IAMIdentityMapping{ObjectMeta: metav1.ObjectMeta{Name: "m", Generation: 1}}
	applied := testOutcome([]awsauth.Entry{entry}, nil, nil)
	m.Status = desiredStatus(m, awsauth.Outcome{Entry: entry}, applied)
	long := metav1.NewTime(time.Now().Add(-time.Hour).Truncate(time.Second))
	m.Status.Conditions[0].LastTransitionTime = long

	// Same outcome at a new generation: Ready stays True since an hour ago.
	m.Generation = 2
	again := desiredStatus(m, awsauth.Outcome{Entry: entry}, applied)
	if got := meta.FindStatusCondition(again.Conditions, "Ready").LastTransitionTime; !got.Equal(&long) {
		t.Errorf("lastTransitionTime moved to %v although Ready stayed True", got)
	}

	// A conflict, then recovery: Stalled comes and goes.
	m.Status = desiredStatus(m, awsauth.Outcome{Entry: entry, ShadowedBy: "other"}, applied)
	if !meta.IsStatusConditionTrue(m.Status.Conditions, "Stalled") {
		t.Fatal("a conflict must stall the mapping")
	}
	recovered := desiredStatus(m, awsauth.Outcome{Entry: entry}, applied)
	if meta.FindStatusCondition(recovered.Conditions, "Stalled") != nil {
		t.Error("Stalled must be removed once the mapping is applied")
	}
}

// testOutcome is the outcome of a reconcile that left aws-auth serving
// served, with the render failing with renderErr or refused by refusal.
func testOutcome(served []awsauth.Entry, renderErr error, refusal *awsauth.Refusal) *outcome {
	var plan managed.Plan
	plan.Refusal = refusal
	return newOutcome(&desired{renderErr: renderErr}, plan, served, "", refusal == nil && renderErr == nil)
}

// statusOf tells a mapping whose spec the outcome was made of from one that
// changed since, and says nothing of a deletion no guard holds.
func TestStatusOf(t *testing.T) {
	t.Parallel()
	entry := awsauth.Entry{Section: awsauth.MapRoles, Identity: "arn:aws:iam::111122223333:role/admins", Username: "admin"}
	m := iamv1alpha1.IAMIdentityMapping{
		ObjectMeta: metav1.ObjectMeta{Name: "admins", UID: "u1", Generation: 2},
		Spec:       iamv1alpha1.IAMIdentityMappingSpec{ARN: entry.Identity, Username: "admin"},
	}
	deleting := *m.DeepCopy()
	deleting.DeletionTimestamp = ptr.To(metav1.Now())
	deleting.Generation++ // as the API server does
	outcomeOf := func(listed iamv1alpha1.IAMIdentityMapping, refusal *awsauth.Refusal) *outcome {
		plan := managed.Plan{Refusal: refusal, Applies: refusal == nil}
		d := &desired{mappings: []iamv1alpha1.IAMIdentityMapping{listed}, listed: listedOf([]iamv1alpha1.IAMIdentityMapping{listed}),
			resolution: awsauth.Resolution{Outcomes: map[string]awsauth.Outcome{"admins": {Entry: entry}}}}
		return newOutcome(d, plan, []awsauth.Entry{entry}, "", refusal == nil)
	}
	older := *m.DeepCopy()
	older.Generation = 1
	recreated := *m.DeepCopy()
	recreated.UID = "u2"
	held := &awsauth.Refusal{Reason: awsauth.RefusedTooManyRemoved, Message: "removes 6 of 10"}
	tests := []struct {
		name       string
		m          iamv1alpha1.IAMIdentityMapping
		o          *outcome
		wantOK     bool
		wantReason string
		wantReady  metav1.ConditionStatus
	}{
		{"rendered as it is: applied", m, outcomeOf(m, nil), true, iamv1alpha1.ReasonApplied, metav1.ConditionTrue},
		{"changed since: progressing", m, outcomeOf(older, nil), true, iamv1alpha1.ReasonProgressing, metav1.ConditionUnknown},
		{"recreated under the same name: progressing", m, outcomeOf(recreated, nil), true, iamv1alpha1.ReasonProgressing, metav1.ConditionUnknown},
		{"not listed yet: progressing", m, newOutcome(&desired{}, managed.Plan{}, nil, "", true), true, iamv1alpha1.ReasonProgressing, metav1.ConditionUnknown},
		{"deletion held by a guard", deleting, outcomeOf(deleting, held), true, iamv1alpha1.ReasonBlocked, metav1.ConditionFalse},
		{"deletion not held: nothing to say", deleting, outcomeOf(deleting, nil), false, "", ""},
		{"deleted since the outcome: nothing to say yet", deleting, outcomeOf(m, held), false, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			status, ok := statusOf(&tc.m, tc.o)
			if ok != tc.wantOK {
				t.Fatalf("ok = %v, want %v", ok, tc.wantOK)
			}
			if !ok {
				return
			}
			ready := meta.FindStatusCondition(status.Conditions, iamv1alpha1.ConditionReady)
			if ready == nil || ready.Reason != tc.wantReason || ready.Status != tc.wantReady {
				t.Fatalf("Ready = %+v, want %s/%s", ready, tc.wantReady, tc.wantReason)
			}
			if status.ObservedGeneration != tc.m.Generation {
				t.Errorf("observedGeneration = %d, want %d", status.ObservedGeneration, tc.m.Generation)
			}
			reconciling := meta.IsStatusConditionTrue(status.Conditions, iamv1alpha1.ConditionReconciling)
			if want := tc.wantReason == iamv1alpha1.ReasonProgressing; reconciling != want {
				t.Errorf("Reconciling = %v, want %v", reconciling, want)
			}
		})
	}
}

// The status reconciler puts the finalizer on, writes the status of the
// outcome, and lets a deleted mapping go once aws-auth is written without it.
func TestMappingStatusReconciler(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	entry := awsauth.Entry{Section: awsauth.MapRoles, Identity: "arn:aws:iam::111122223333:role/admins", Username: "admin"}
	m := &iamv1alpha1.IAMIdentityMapping{
		ObjectMeta: metav1.ObjectMeta{Name: "admins", UID: "u1", Generation: 1},
		Spec:       iamv1alpha1.IAMIdentityMappingSpec{ARN: entry.Identity, Username: "admin"},
	}
	c := newRecorder(t, m)
	rec := events.NewFakeRecorder(10)
	r := &MappingStatusReconciler{Client: c, Recorder: rec, outcomes: &outcomes{}}
	req := ctrl.Request{NamespacedName: types.NamespacedName{Name: "admins"}}
	get := func() *iamv1alpha1.IAMIdentityMapping {
		got := &iamv1alpha1.IAMIdentityMapping{}
		if err := c.Get(ctx, req.NamespacedName, got); err != nil {
			t.Fatal(err)
		}
		return got
	}

	// Before any outcome: only the finalizer.
	if _, err := r.Reconcile(ctx, req); err != nil {
		t.Fatal(err)
	}
	if got := get(); !slices.Equal(got.Finalizers, []string{iamv1alpha1.ProtectionFinalizer}) || len(got.Status.Conditions) > 0 {
		t.Fatalf("finalizers %v, conditions %v: want the finalizer and no status yet", got.Finalizers, got.Status.Conditions)
	}

	publish := func(listed *iamv1alpha1.IAMIdentityMapping, applied bool) {
		d := &desired{mappings: []iamv1alpha1.IAMIdentityMapping{*listed}, listed: listedOf([]iamv1alpha1.IAMIdentityMapping{*listed}),
			resolution: awsauth.Resolution{Outcomes: map[string]awsauth.Outcome{"admins": {Entry: entry}}}}
		var served []awsauth.Entry
		if listed.DeletionTimestamp.IsZero() {
			served = []awsauth.Entry{entry}
		}
		r.outcomes.publish(newOutcome(d, managed.Plan{Applies: applied}, served, "", applied))
	}
	publish(get(), true)
	c.forget()
	if _, err := r.Reconcile(ctx, req); err != nil {
		t.Fatal(err)
	}
	if ready := readyConditionOf(get()); ready == nil || ready.Status != metav1.ConditionTrue {
		t.Fatalf("Ready = %+v, want True", ready)
	}
	if got := get().Status.Identity; got != entry.Identity {
		t.Errorf("status.identity = %q, want %q", got, entry.Identity)
	}
	expectOneEvent(t, rec, "Normal Applied ", entry.Identity)
	// Nothing changed: nothing is written, nothing said again.
	c.forget()
	if _, err := r.Reconcile(ctx, req); err != nil {
		t.Fatal(err)
	}
	if got := c.took(); !slices.Equal(got, []string{"get admins"}) {
		t.Errorf("calls = %q, want only the read", got)
	}
	if got := drain(rec); len(got) != 0 {
		t.Errorf("events %q after a reconcile that changed nothing, want none", got)
	}

	// Deleted: held by the finalizer until an applied outcome without it.
	if err := c.Delete(ctx, get()); err != nil {
		t.Fatal(err)
	}
	// The API server moves the generation when it sets deletionTimestamp;
	// the fake does not, so it is done here.
	deleted := get()
	deleted.Generation++
	if err := c.Update(ctx, deleted); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Reconcile(ctx, req); err != nil {
		t.Fatal(err)
	}
	if got := get(); got.DeletionTimestamp.IsZero() || len(got.Finalizers) == 0 {
		t.Fatal("the mapping went before aws-auth was written without it")
	}
	publish(get(), true)
	if _, err := r.Reconcile(ctx, req); err != nil {
		t.Fatal(err)
	}
	if err := c.Get(ctx, req.NamespacedName, &iamv1alpha1.IAMIdentityMapping{}); !apierrors.IsNotFound(err) {
		t.Errorf("get after release: %v, want NotFound", err)
	}
	expectOneEvent(t, rec, "Normal Removed ", entry.Identity)
}

// expectOneEvent asserts that exactly one event was recorded, of the given
// type and reason, naming identity.
func expectOneEvent(t *testing.T, rec *events.FakeRecorder, typeAndReason, identity string) {
	t.Helper()
	got := drain(rec)
	if len(got) != 1 || !strings.HasPrefix(got[0], typeAndReason) || !strings.Contains(got[0], identity) {
		t.Errorf("events %q, want one %q naming %s", got, typeAndReason, identity)
	}
}

func readyConditionOf(m *iamv1alpha1.IAMIdentityMapping) *metav1.Condition {
	return meta.FindStatusCondition(m.Status.Conditions, iamv1alpha1.ConditionReady)
}

// A finalizer patch that meets a newer version of the mapping (the cache
// behind a write of a moment ago) is tried again shortly, without an error
// for controller-runtime to log; another failure is still an error.
func TestMappingStatusReconcilerRetriesAConflictQuietly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m := &iamv1alpha1.IAMIdentityMapping{
		ObjectMeta: metav1.ObjectMeta{Name: "admins", UID: "u1", Generation: 1},
		Spec:       iamv1alpha1.IAMIdentityMappingSpec{ARN: "arn:aws:iam::111122223333:role/admins", Username: "admin"},
	}
	c := newRecorder(t, m)
	r := &MappingStatusReconciler{Client: c, Recorder: events.NewFakeRecorder(10), outcomes: &outcomes{}}
	req := ctrl.Request{NamespacedName: types.NamespacedName{Name: "admins"}}
	resource := iamv1alpha1.GroupVersion.WithResource("iamidentitymappings").GroupResource()

	c.fail = map[string]error{"patch admins": apierrors.NewConflict(resource, "admins", errors.New("the object has been modified"))}
	res, err := r.Reconcile(ctx, req)
	if err != nil || res.RequeueAfter != conflictRetry {
		t.Fatalf("Reconcile after a conflict = %+v, %v; want a retry after %v and no error", res, err, conflictRetry)
	}

	c.fail = map[string]error{"patch admins": apierrors.NewServiceUnavailable("etcd is away")}
	if _, err := r.Reconcile(ctx, req); !apierrors.IsServiceUnavailable(err) {
		t.Fatalf("Reconcile after another failure: %v, want that error", err)
	}

	c.fail = nil
	if res, err := r.Reconcile(ctx, req); err != nil || res.RequeueAfter != 0 {
		t.Fatalf("Reconcile = %+v, %v; want done", res, err)
	}
	got := &iamv1alpha1.IAMIdentityMapping{}
	if err := c.Get(ctx, req.NamespacedName, got); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Finalizers, []string{iamv1alpha1.ProtectionFinalizer}) {
		t.Fatalf("finalizers %v, want the protection finalizer", got.Finalizers)
	}
}
