package managed_test

import (
	"fmt"
	"maps"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/managed"
)

func user(name string) awsauth.Entry {
	return awsauth.Entry{Section: awsauth.MapUsers, Identity: "arn:aws:iam::111122223333:user/" + name, Username: name}
}

var nodes = awsauth.Entry{Section: awsauth.MapRoles, Identity: "arn:aws:iam::111122223333:role/nodes",
	Username: "system:node:{{EC2PrivateDNSName}}", Groups: []string{"system:bootstrappers", "system:nodes"}}

func render(t *testing.T, entries ...awsauth.Entry) awsauth.Rendered {
	t.Helper()
	r, err := awsauth.Render(entries)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// written is aws-auth as the operator writes it in mode, with a label and
// an annotation of someone else's that must survive every write.
func written(r awsauth.Rendered, mode managed.Mode) *corev1.ConfigMap {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
		Namespace: "kube-system", Name: "aws-auth", UID: "uid-1", ResourceVersion: "7",
		Labels: map[string]string{"team": "platform"}, Annotations: map[string]string{"note": "keep me"},
	}}
	managed.Set(cm, r, mode)
	return cm
}

func terminating(cm *corev1.ConfigMap) *corev1.ConfigMap {
	cm.DeletionTimestamp = ptr.To(metav1.Now())
	return cm
}

func TestPlanWrite(t *testing.T) {
	t.Parallel()
	ten := make([]awsauth.Entry, 10)
	for i := range ten {
		ten[i] = user(fmt.Sprintf("u%02d", i))
	}
	old := render(t, nodes, user("alice"))
	next := render(t, nodes, user("alice"), user("bob"))
	fourOfTen := render(t, ten[:4]...)
	share := 0.5

	type want struct {
		action      managed.Action
		data        awsauth.Rendered // what Write holds, if anything is written
		drift       string
		refusal     string // its reason
		refusedHash string
		allowed     string
		applies     bool
	}
	tests := []struct {
		name     string
		live     *corev1.ConfigMap
		rendered *awsauth.Rendered
		mode     managed.Mode
		guards   managed.Guards
		want     want
	}{
		{name: "missing: create", rendered: &next, mode: managed.Immutable,
			want: want{action: managed.ActionCreate, data: next, applies: true}},
		{name: "up to date: nothing, and the guards are not asked", live: written(fourOfTen, managed.Immutable), rendered: &fourOfTen, mode: managed.Immutable,
			guards: managed.Guards{Applied: ten, MaxRemovedShare: share},
			want:   want{action: managed.ActionNone, applies: true}},
		{name: "new data, immutable: replace", live: written(old, managed.Immutable), rendered: &next, mode: managed.Immutable,
			guards: managed.Guards{Applied: old.Entries, MaxRemovedShare: share},
			want:   want{action: managed.ActionReplace, data: next, applies: true}},
		{name: "new data, mutable: update in place", live: written(old, managed.Mutable), rendered: &next, mode: managed.Mutable,
			guards: managed.Guards{Applied: old.Entries, MaxRemovedShare: share},
			want:   want{action: managed.ActionUpdate, data: next, applies: true}},
		{name: "mutable becomes immutable in place", live: written(next, managed.Mutable), rendered: &next, mode: managed.Immutable,
			want: want{action: managed.ActionUpdate, data: next, drift: managed.DriftMetadata, applies: true}},
		{name: "immutable cannot become mutable in place", live: written(next, managed.Immutable), rendered: &next, mode: managed.Mutable,
			want: want{action: managed.ActionReplace, data: next, drift: managed.DriftMetadata, applies: true}},
		{name: "our label removed: metadata restored in place", rendered: &next, mode: managed.Immutable,
			live: func() *corev1.ConfigMap {
				cm := written(next, managed.Immutable)
				delete(cm.Labels, iamv1alpha1.ManagedByLabel)
				return cm
			}(),
			want: want{action: managed.ActionUpdate, data: next, drift: managed.DriftMetadata, applies: true}},
		{name: "data edited by someone else: replaced", rendered: &next, mode: managed.Immutable,
			live: func() *corev1.ConfigMap {
				cm := written(next, managed.Immutable)
				cm.Data = old.Data // the hash annotation still names next
				return cm
			}(),
			guards: managed.Guards{Applied: next.Entries, MaxRemovedShare: share},
			want:   want{action: managed.ActionReplace, data: next, drift: managed.DriftData, applies: true}},
		{name: "binary data added: not up to date", rendered: &next, mode: managed.Mutable,
			live: func() *corev1.ConfigMap {
				cm := written(next, managed.Mutable)
				cm.BinaryData = map[string][]byte{"x": []byte("y")}
				return cm
			}(),
			want: want{action: managed.ActionUpdate, data: next, drift: managed.DriftData, applies: true}},
		{name: "recreated by someone else without our marks", rendered: &next, mode: managed.Immutable,
			live:   &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "aws-auth"}, Data: old.Data},
			guards: managed.Guards{Applied: old.Entries, MaxRemovedShare: share},
			want:   want{action: managed.ActionUpdate, data: next, drift: managed.DriftUnmanaged, applies: true}},
		{name: "an adopted aws-auth taken over as it is: no drift", rendered: &next, mode: managed.Immutable,
			live: &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "aws-auth"}, Data: next.Data},
			want: want{action: managed.ActionUpdate, data: next, applies: true}},
		{name: "terminating: finish the replace with the render", live: terminating(written(old, managed.Immutable)), rendered: &next, mode: managed.Immutable,
			guards: managed.Guards{Applied: old.Entries, MaxRemovedShare: share},
			want:   want{action: managed.ActionFinishReplace, data: next, applies: true}},
		{name: "terminating and up to date: still recreated", live: terminating(written(next, managed.Immutable)), rendered: &next, mode: managed.Immutable,
			want: want{action: managed.ActionFinishReplace, data: next, applies: true}},

		{name: "too many removed: kept", live: written(render(t, ten...), managed.Immutable), rendered: &fourOfTen, mode: managed.Immutable,
			guards: managed.Guards{Applied: ten, MaxRemovedShare: share},
			want:   want{action: managed.ActionKeep, refusal: awsauth.RefusedTooManyRemoved, refusedHash: fourOfTen.Hash}},
		{name: "measured against the record, not the live aws-auth", live: written(fourOfTen, managed.Immutable), rendered: &fourOfTen, mode: managed.Mutable,
			guards: managed.Guards{Applied: ten, MaxRemovedShare: share},
			want:   want{action: managed.ActionKeep, refusal: awsauth.RefusedTooManyRemoved, refusedHash: fourOfTen.Hash}},
		{name: "last nodes entry removed while missing: not created", rendered: ptr.To(render(t, user("alice"))), mode: managed.Immutable,
			guards: managed.Guards{Applied: old.Entries, MaxRemovedShare: share},
			want:   want{action: managed.ActionKeep, refusal: awsauth.RefusedNodes, refusedHash: render(t, user("alice")).Hash}},
		{name: "refused while terminating: back with the data it served", live: terminating(written(render(t, ten...), managed.Immutable)), rendered: &fourOfTen, mode: managed.Immutable,
			guards: managed.Guards{Applied: ten, MaxRemovedShare: share},
			want:   want{action: managed.ActionFinishReplace, data: render(t, ten...), refusal: awsauth.RefusedTooManyRemoved, refusedHash: fourOfTen.Hash}},
		{name: "refused, allowed by annotation: written", rendered: &fourOfTen, mode: managed.Immutable,
			live: func() *corev1.ConfigMap {
				cm := written(render(t, ten...), managed.Immutable)
				cm.Annotations[iamv1alpha1.AllowRenderAnnotation] = fourOfTen.Hash
				return cm
			}(),
			guards: managed.Guards{Applied: ten, MaxRemovedShare: share},
			want:   want{action: managed.ActionReplace, data: fourOfTen, allowed: awsauth.RefusedTooManyRemoved, applies: true}},
		{name: "an annotation for another render allows nothing", rendered: &fourOfTen, mode: managed.Immutable,
			live: func() *corev1.ConfigMap {
				cm := written(render(t, ten...), managed.Immutable)
				cm.Annotations[iamv1alpha1.AllowRenderAnnotation] = next.Hash
				return cm
			}(),
			guards: managed.Guards{Applied: ten, MaxRemovedShare: share},
			want:   want{action: managed.ActionKeep, refusal: awsauth.RefusedTooManyRemoved, refusedHash: fourOfTen.Hash}},
		{name: "held by adoption although nothing is removed", rendered: &next, mode: managed.Immutable,
			live:   &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "aws-auth"}, Data: old.Data},
			guards: managed.Guards{Held: &awsauth.Refusal{Reason: awsauth.RefusedUnrepresentable, Message: "an sso entry"}},
			want:   want{action: managed.ActionKeep, refusal: awsauth.RefusedUnrepresentable, refusedHash: next.Hash}},

		{name: "nothing rendered: kept", live: written(old, managed.Immutable), mode: managed.Immutable,
			guards: managed.Guards{Held: &awsauth.Refusal{Reason: awsauth.RefusedCRDUnusable, Message: "no CRD"}},
			want:   want{action: managed.ActionKeep, refusal: awsauth.RefusedCRDUnusable}},
		{name: "nothing rendered and missing: nothing to keep", mode: managed.Immutable,
			want: want{action: managed.ActionKeep}},
		{name: "nothing rendered, terminating: back with its own data", live: terminating(written(old, managed.Immutable)), mode: managed.Immutable,
			guards: managed.Guards{Held: &awsauth.Refusal{Reason: awsauth.RefusedCRDUnusable, Message: "no CRD"}},
			want:   want{action: managed.ActionFinishReplace, data: old, refusal: awsauth.RefusedCRDUnusable}},
		{name: "nothing rendered, terminating but never ours: let go", mode: managed.Immutable,
			live: terminating(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "aws-auth", Finalizers: []string{"other"}}, Data: old.Data}),
			want: want{action: managed.ActionKeep}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var before *corev1.ConfigMap
			if tc.live != nil {
				before = tc.live.DeepCopy()
			}
			plan := managed.PlanWrite(managed.Observe(tc.live), tc.rendered, tc.mode, tc.guards)

			if plan.Action != tc.want.action {
				t.Fatalf("action = %s, want %s (refusal %+v)", plan.Action, tc.want.action, plan.Refusal)
			}
			if plan.Drift != tc.want.drift {
				t.Errorf("drift = %q, want %q", plan.Drift, tc.want.drift)
			}
			if got := reasonOf(plan.Refusal); got != tc.want.refusal {
				t.Errorf("refusal = %q, want %q", got, tc.want.refusal)
			}
			if plan.RefusedHash != tc.want.refusedHash {
				t.Errorf("refused hash = %q, want %q", plan.RefusedHash, tc.want.refusedHash)
			}
			if got := reasonOf(plan.Allowed); got != tc.want.allowed {
				t.Errorf("allowed = %q, want %q", got, tc.want.allowed)
			}
			if plan.Applies != tc.want.applies {
				t.Errorf("applies = %v, want %v", plan.Applies, tc.want.applies)
			}
			if tc.live != nil && !equalObjects(before, tc.live) {
				t.Error("the plan changed the observed object")
			}
			checkWrite(t, plan, tc.live, tc.want.data, tc.mode)
		})
	}
}

// checkWrite holds the object a plan writes to what the operator owns and
// what others put on aws-auth.
func checkWrite(t *testing.T, plan managed.Plan, live *corev1.ConfigMap, want awsauth.Rendered, mode managed.Mode) {
	t.Helper()
	cm := plan.Write
	if plan.Action == managed.ActionNone || plan.Action == managed.ActionKeep {
		if cm != nil {
			t.Errorf("%s writes %v", plan.Action, cm.Name)
		}
		return
	}
	if cm == nil {
		t.Fatalf("%s has nothing to write", plan.Action)
	}
	switch {
	case !maps.Equal(cm.Data, want.Data):
		t.Error("the write does not hold the wanted data")
	case plan.Data.Hash != want.Hash || plan.Data.Size != want.Size || len(plan.Data.Entries) != len(want.Entries):
		t.Errorf("plan data: hash %.12s, %d bytes, %d entries; want %.12s, %d, %d", plan.Data.Hash, plan.Data.Size, len(plan.Data.Entries), want.Hash, want.Size, len(want.Entries))
	case cm.Annotations[iamv1alpha1.DataHashAnnotation] != awsauth.Hash(want.Data):
		t.Errorf("hash annotation %q does not name the data", cm.Annotations[iamv1alpha1.DataHashAnnotation])
	case cm.Labels[iamv1alpha1.ManagedByLabel] != iamv1alpha1.ManagedByValue:
		t.Error("the write lacks the managed-by label")
	case len(cm.Finalizers) == 0 || cm.Finalizers[len(cm.Finalizers)-1] != iamv1alpha1.ProtectionFinalizer:
		t.Errorf("finalizers %v lack ours", cm.Finalizers)
	case ptr.Deref(cm.Immutable, false) != (mode == managed.Immutable):
		t.Errorf("immutable = %v in mode %s", ptr.Deref(cm.Immutable, false), mode)
	case len(cm.BinaryData) > 0:
		t.Error("binary data is kept")
	case len(cm.OwnerReferences) > 0:
		t.Error("aws-auth must never have an owner: garbage collection would delete it")
	}
	if live != nil {
		for k, v := range live.Labels {
			if k != "app.kubernetes.io/instance" && k != "argocd.argoproj.io/instance" && cm.Labels[k] != v {
				t.Errorf("label %s=%s of someone else is lost", k, v)
			}
		}
		if cm.Annotations["note"] != live.Annotations["note"] {
			t.Error("an annotation of someone else is lost")
		}
	}
	// Only an update in place carries what it was decided on; a create
	// must not send a resourceVersion or UID.
	if plan.Action == managed.ActionUpdate {
		if cm.ResourceVersion != live.ResourceVersion || cm.UID != live.UID {
			t.Errorf("update is not fenced by resourceVersion %q and UID %q", live.ResourceVersion, live.UID)
		}
	} else if cm.ResourceVersion != "" || cm.UID != "" || cm.DeletionTimestamp != nil {
		t.Errorf("%s writes a new object with resourceVersion %q, UID %q, deletionTimestamp %v", plan.Action, cm.ResourceVersion, cm.UID, cm.DeletionTimestamp)
	}
}

func reasonOf(r *awsauth.Refusal) string {
	if r == nil {
		return ""
	}
	return r.Reason
}

func equalObjects(a, b *corev1.ConfigMap) bool {
	return equality.Semantic.DeepEqual(a, b)
}

// Argo CD must never claim aws-auth: its tracking marks go, and its
// annotations say to leave it alone.
func TestSetDropsArgoCDTracking(t *testing.T) {
	t.Parallel()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
		Labels:      map[string]string{"app.kubernetes.io/instance": "platform", "argocd.argoproj.io/instance": "platform", "team": "a"},
		Annotations: map[string]string{"argocd.argoproj.io/tracking-id": "platform:/ConfigMap:kube-system/aws-auth"},
	}}
	managed.Set(cm, render(t, user("alice")), managed.Immutable)
	for _, l := range []string{"app.kubernetes.io/instance", "argocd.argoproj.io/instance"} {
		if _, ok := cm.Labels[l]; ok {
			t.Errorf("tracking label %s kept", l)
		}
	}
	if _, ok := cm.Annotations["argocd.argoproj.io/tracking-id"]; ok {
		t.Error("tracking annotation kept")
	}
	if cm.Labels["team"] != "a" {
		t.Error("a label of someone else is lost")
	}
	if got := cm.Annotations["argocd.argoproj.io/sync-options"]; got != "Prune=false,Delete=false" {
		t.Errorf("sync-options = %q: a prune would delete aws-auth", got)
	}
	if got := cm.Annotations["argocd.argoproj.io/compare-options"]; got != "IgnoreExtraneous" {
		t.Errorf("compare-options = %q", got)
	}
}

// The render input of a mapping carries every field of its spec.
func TestMappingInput(t *testing.T) {
	t.Parallel()
	created := metav1.Now()
	m := &iamv1alpha1.IAMIdentityMapping{
		ObjectMeta: metav1.ObjectMeta{Name: "admins", CreationTimestamp: created},
		Spec: iamv1alpha1.IAMIdentityMappingSpec{
			ARN: "arn:aws:iam::111122223333:role/admins", Username: "admin:{{SessionName}}",
			Groups: []iamv1alpha1.IdentityName{"platform:admins", "platform:viewers"},
		},
	}
	in := managed.MappingInput(m)
	if in.Name != "admins" || !in.Created.Equal(created.Time) || in.ARN != m.Spec.ARN || in.Username != "admin:{{SessionName}}" ||
		fmt.Sprint(in.Groups) != "[platform:admins platform:viewers]" || in.AccountID != "" {
		t.Errorf("MappingInput = %+v", in)
	}
	account := managed.MappingInput(&iamv1alpha1.IAMIdentityMapping{Spec: iamv1alpha1.IAMIdentityMappingSpec{AccountID: "444455556666"}})
	if account.AccountID != "444455556666" || account.ARN != "" || len(account.Groups) != 0 {
		t.Errorf("MappingInput of an account = %+v", account)
	}
}
