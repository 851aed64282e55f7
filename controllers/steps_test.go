package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/managed"
)

// These tests hold each step of the reconcile to its contract with a
// client that records what is sent. What only the API server decides
// (immutability, admission, preconditions, the watch) is tested against a
// real one in test/integration.

const testNamespace = "aws-auth-guardian-system"

// recorder is a fake client that logs each call as "verb name".
type recorder struct {
	client.WithWatch
	mu    sync.Mutex
	calls []string
	// fail makes the calls whose log line it names fail with its error.
	fail map[string]error
}

func newRecorder(t *testing.T, objs ...client.Object) *recorder {
	t.Helper()
	r := &recorder{}
	note := func(verb string, obj client.Object) error {
		r.mu.Lock()
		defer r.mu.Unlock()
		call := verb + " " + obj.GetName()
		r.calls = append(r.calls, call)
		return r.fail[call]
	}
	base := fake.NewClientBuilder().WithScheme(NewScheme()).WithObjects(objs...).
		WithStatusSubresource(&iamv1alpha1.IAMIdentityMapping{}).Build()
	r.WithWatch = interceptor.NewClient(base, interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			obj.SetName(key.Name)
			if err := note("get", obj); err != nil {
				return err
			}
			return c.Get(ctx, key, obj, opts...)
		},
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			if err := note("create", obj); err != nil {
				return err
			}
			return c.Create(ctx, obj, opts...)
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			if err := note("update", obj); err != nil {
				return err
			}
			return c.Update(ctx, obj, opts...)
		},
		Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
			var o client.DeleteOptions
			o.ApplyOptions(opts)
			verb := "delete"
			if o.Preconditions != nil && o.Preconditions.UID != nil && o.Preconditions.ResourceVersion != nil {
				verb = "delete-fenced"
			}
			if err := note(verb, obj); err != nil {
				return err
			}
			return c.Delete(ctx, obj, opts...)
		},
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
			if err := note("patch", obj); err != nil {
				return err
			}
			return c.Patch(ctx, obj, patch, opts...)
		},
	})
	return r
}

// recorderWith is a recorder holding live, if it is not nil.
func recorderWith(t *testing.T, live *corev1.ConfigMap) *recorder {
	t.Helper()
	if live == nil {
		return newRecorder(t)
	}
	return newRecorder(t, live)
}

func (r *recorder) took() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

func (r *recorder) forget() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = nil
}

func testReconciler(c *recorder) (*AWSAuthReconciler, *events.FakeRecorder) {
	rec := events.NewFakeRecorder(100)
	return &AWSAuthReconciler{Client: c, APIReader: c, Recorder: rec, Mode: managed.Immutable,
		MaxRemovedShare: 0.5, BackupNamespace: testNamespace}, rec
}

func testRender(t *testing.T, names ...string) awsauth.Rendered {
	t.Helper()
	entries := []awsauth.Entry{{Section: awsauth.MapRoles, Identity: "arn:aws:iam::111122223333:role/nodes",
		Username: "system:node:{{EC2PrivateDNSName}}", Groups: []string{"system:bootstrappers", "system:nodes"}}}
	for _, n := range names {
		entries = append(entries, awsauth.Entry{Section: awsauth.MapUsers, Identity: "arn:aws:iam::111122223333:user/" + n, Username: n})
	}
	r, err := awsauth.Render(entries)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func awsAuthWith(r awsauth.Rendered, finalizers ...string) *corev1.ConfigMap {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: managed.AWSAuthKey.Namespace, Name: managed.AWSAuthKey.Name, UID: "uid-1"}}
	managed.Set(cm, r, managed.Immutable)
	cm.Finalizers = append(cm.Finalizers, finalizers...)
	return cm
}

// read returns aws-auth as the fake holds it, observed.
func read(t *testing.T, c client.Client) managed.Observed {
	t.Helper()
	cm := &corev1.ConfigMap{}
	if err := c.Get(context.Background(), managed.AWSAuthKey, cm); err != nil {
		t.Fatal(err)
	}
	return managed.Observe(cm)
}

// The write step sends exactly the calls of the plan's action, fenced, and
// records the render in the backup once aws-auth holds it.
func TestWriteDoesWhatThePlanSays(t *testing.T) {
	t.Parallel()
	old, next := testRender(t, "alice"), testRender(t, "alice", "bob")
	tests := []struct {
		name  string
		live  *corev1.ConfigMap
		plan  func(managed.Observed) managed.Plan
		calls []string
		// deleted: live was deleted, and is held by its finalizers.
		deleted bool
	}{
		{"none: only the backup", awsAuthWith(next), func(o managed.Observed) managed.Plan {
			return managed.PlanWrite(o, &next, managed.Immutable, managed.Guards{})
		}, []string{"get aws-auth-backup", "create aws-auth-backup"}, false},
		{"create", nil, func(o managed.Observed) managed.Plan {
			return managed.PlanWrite(o, &next, managed.Immutable, managed.Guards{})
		}, []string{"create aws-auth", "get aws-auth-backup", "create aws-auth-backup"}, false},
		{"replace: a fenced delete, the release, the create", awsAuthWith(old), func(o managed.Observed) managed.Plan {
			return managed.PlanWrite(o, &next, managed.Immutable, managed.Guards{Applied: old.Entries, MaxRemovedShare: 0.5})
		}, []string{"delete-fenced aws-auth", "patch aws-auth", "create aws-auth", "get aws-auth-backup", "create aws-auth-backup"}, false},
		{"keep: nothing at all", awsAuthWith(old), func(o managed.Observed) managed.Plan {
			return managed.PlanWrite(o, &next, managed.Immutable, managed.Guards{Held: &awsauth.Refusal{Reason: awsauth.RefusedUnrepresentable}})
		}, nil, false},
		{"a terminating aws-auth kept: released and recreated, no backup", awsAuthWith(old, "example.com/other"), func(o managed.Observed) managed.Plan {
			return managed.PlanWrite(o, nil, managed.Immutable, managed.Guards{Held: &awsauth.Refusal{Reason: awsauth.RefusedCRDUnusable}})
		}, []string{"patch aws-auth", "create aws-auth"}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := recorderWith(t, tc.live)
			r, _ := testReconciler(c)
			observed := managed.Observed{}
			if tc.live != nil {
				if tc.deleted {
					if err := c.Delete(context.Background(), tc.live.DeepCopy()); err != nil {
						t.Fatal(err)
					}
				}
				observed = read(t, c)
				c.forget()
			}
			plan := tc.plan(observed)
			done := r.write(context.Background(), observed, plan)
			if done.err != nil || done.backupErr != nil {
				t.Fatalf("write: %v, backup: %v", done.err, done.backupErr)
			}
			if got := c.took(); !slices.Equal(got, tc.calls) {
				t.Errorf("calls = %q, want %q", got, tc.calls)
			}
			if plan.Write != nil {
				if got := read(t, c); got.Hash != plan.Data.Hash || got.Terminating() {
					t.Errorf("aws-auth holds %.12s (terminating %v), want %.12s", got.Hash, got.Terminating(), plan.Data.Hash)
				}
			}
		})
	}
}

// A failed release stops the replace before the create: the old aws-auth,
// still served, stays, and the error says what failed.
func TestWriteStopsAtAFailedRelease(t *testing.T) {
	t.Parallel()
	old, next := testRender(t, "alice"), testRender(t, "alice", "bob")
	c := newRecorder(t, awsAuthWith(old))
	c.fail = map[string]error{"patch aws-auth": apierrors.NewForbidden(schema.GroupResource{Resource: "configmaps"}, "aws-auth", fmt.Errorf("denied by policy"))}
	r, _ := testReconciler(c)
	observed := read(t, c)
	c.forget()
	done := r.write(context.Background(), observed, managed.PlanWrite(observed, &next, managed.Immutable, managed.Guards{}))
	if done.err == nil || !strings.Contains(done.err.Error(), "releasing the deleted aws-auth") {
		t.Fatalf("err = %v, want the release named", done.err)
	}
	if got, want := c.took(), []string{"delete-fenced aws-auth", "patch aws-auth"}; !slices.Equal(got, want) {
		t.Errorf("calls = %q, want %q: nothing after the failed release", got, want)
	}
	if r.lastApplied != nil {
		t.Error("a failed write was recorded as applied")
	}
}

// observe heals a missing aws-auth from the record before anything else;
// after a DELETED event it does not read aws-auth first.
func TestObserveRestoresFromTheRecord(t *testing.T) {
	t.Parallel()
	record := testRender(t, "alice")
	tests := []struct {
		name    string
		live    *corev1.ConfigMap
		deleted bool
		calls   []string
		restore bool
	}{
		{"present: one read", awsAuthWith(record), false, []string{"get aws-auth"}, false},
		{"missing: read, then created from the record", nil, false, []string{"get aws-auth", "create aws-auth"}, true},
		{"deleted by the last event: created without a read", nil, true, []string{"create aws-auth"}, true},
		{"deleted, but back already: the create is refused, then read", awsAuthWith(record), true, []string{"create aws-auth", "get aws-auth"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := recorderWith(t, tc.live)
			r, rec := testReconciler(c)
			r.lastApplied = &record
			r.events.record(tc.deleted)
			obs, err := r.observe(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if got := c.took(); !slices.Equal(got, tc.calls) {
				t.Errorf("calls = %q, want %q", got, tc.calls)
			}
			if obs.Object == nil || obs.Hash != record.Hash || len(obs.Entries) != len(record.Entries) {
				t.Fatalf("observed %+v, want aws-auth with the record", obs.Observed)
			}
			if (obs.restored != nil) != tc.restore {
				t.Errorf("restored = %v, want %v", obs.restored != nil, tc.restore)
			}
			r.report(context.Background(), obs, nil, nil)
			if got := drain(rec); tc.restore != slices.ContainsFunc(got, func(e string) bool { return strings.HasPrefix(e, "Normal Restored") }) {
				t.Errorf("events %q: a Restored event is wanted only for a restore", got)
			}
		})
	}
}

func drain(rec *events.FakeRecorder) []string {
	var got []string
	for {
		select {
		case e := <-rec.Events:
			got = append(got, e)
		default:
			return got
		}
	}
}

// report turns what a write did into events; one outcome per change is
// published for the status reconciler.
func TestReportTellsWhatWasDone(t *testing.T) {
	t.Parallel()
	old, next := testRender(t, "alice"), testRender(t, "alice", "bob")
	live := managed.Observe(awsAuthWith(old, "example.com/other"))
	terminatingLive := live
	terminatingLive.Object = live.Object.DeepCopy()
	terminatingLive.Object.DeletionTimestamp = ptr.To(metav1.Now())
	ten := managed.Guards{Applied: testRender(t, "a", "b", "c", "d", "e", "f", "g", "h", "i").Entries, MaxRemovedShare: 0.5}
	tests := []struct {
		name   string
		done   written
		events []string
	}{
		{"replaced", written{observed: live, plan: managed.PlanWrite(live, &next, managed.Immutable, managed.Guards{})},
			[]string{"Warning ForeignFinalizersRemoved", "Normal Replaced"}},
		{"recreated", written{observed: terminatingLive, plan: managed.PlanWrite(terminatingLive, &next, managed.Immutable, managed.Guards{})},
			[]string{"Warning ForeignFinalizersRemoved", "Normal Recreated"}},
		{"refused", written{observed: live, plan: managed.PlanWrite(live, &next, managed.Immutable, ten)},
			[]string{"Warning Blocked To write this render anyway: kubectl annotate -n kube-system configmap aws-auth --overwrite iam.aws-auth-guardian.dev/allow-render=" + next.Hash}},
		{"failed", written{observed: live, plan: managed.PlanWrite(live, &next, managed.Immutable, managed.Guards{}), err: fmt.Errorf("denied")},
			[]string{"Warning ApplyFailed Writing aws-auth failed"}},
		{"lost a race: no warning", written{observed: live, plan: managed.PlanWrite(live, &next, managed.Immutable, managed.Guards{}),
			err: apierrors.NewConflict(schema.GroupResource{Resource: "configmaps"}, "aws-auth", fmt.Errorf("changed"))}, nil},
		{"missing, nothing to restore it from", written{plan: managed.PlanWrite(managed.Observed{}, nil, managed.Immutable, managed.Guards{})},
			[]string{"Warning NoBackup"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, rec := testReconciler(newRecorder(t))
			r.report(context.Background(), observation{Observed: tc.done.observed}, nil, &tc.done)
			got := drain(rec)
			if len(got) != len(tc.events) {
				t.Fatalf("events = %q, want %d: %q", got, len(tc.events), tc.events)
			}
			for i, want := range tc.events {
				if !strings.HasPrefix(got[i], want) {
					t.Errorf("event %d = %q, want it to start with %q", i, got[i], want)
				}
			}
		})
	}
}

// Publishing an outcome queues status work only when a status may change.
func TestPublishOnlyOnChange(t *testing.T) {
	t.Parallel()
	rendered := testRender(t, "alice")
	m := iamv1alpha1.IAMIdentityMapping{ObjectMeta: metav1.ObjectMeta{Name: "alice", UID: "u1", Generation: 1}}
	d := &desired{mappings: []iamv1alpha1.IAMIdentityMapping{m}, listed: listedOf([]iamv1alpha1.IAMIdentityMapping{m}), rendered: &rendered}
	plan := managed.Plan{Action: managed.ActionNone, Data: rendered, Applies: true}
	first := newOutcome(d, plan, rendered.Entries, rendered.Hash, true)
	if !first.sameAs(newOutcome(d, plan, rendered.Entries, rendered.Hash, true)) {
		t.Error("the same reconcile twice is a change")
	}
	m.Generation = 2
	changed := newOutcome(&desired{mappings: []iamv1alpha1.IAMIdentityMapping{m}, listed: listedOf([]iamv1alpha1.IAMIdentityMapping{m}), rendered: &rendered}, plan, rendered.Entries, rendered.Hash, true)
	if first.sameAs(changed) {
		t.Error("a new generation of a mapping is no change")
	}
	refused := plan
	refused.Refusal = &awsauth.Refusal{Reason: awsauth.RefusedTooManyRemoved, Message: "removes 6 of 10"}
	if first.sameAs(newOutcome(d, refused, rendered.Entries, rendered.Hash, false)) {
		t.Error("a refusal is no change")
	}
}
