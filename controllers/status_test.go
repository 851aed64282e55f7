package controllers

import (
	"errors"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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
