package chaos

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/managed"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/testing/mappingtest"
)

// The load keeps the mappings clear of the refuse-to-wipe guards, so that
// every write the operator decides on is one it must make: the node
// mapping is never deleted and always grants system:nodes; there are
// always at least minMappings; at most maxPendingDeletes deletions wait
// for the operator at once, so no write removes anywhere near half the
// entries, even after a kill lets changes pile up.
const (
	minMappings       = 10
	maxMappings       = 24
	maxPendingDeletes = 3
	account           = "111122223333"
	nodesMapping      = "nodes"
)

// spec is what the test asked of one mapping.
type spec struct {
	arn       string
	username  string
	groups    []string
	accountID string
}

// entry is the aws-auth entry the spec must render as, worked out here
// from the documented rules, not by the operator's code: a role loses its
// path, a user keeps it, an account entry is the account alone.
func (s spec) entry() awsauth.Entry {
	switch {
	case s.accountID != "":
		return awsauth.Entry{Section: awsauth.MapAccounts, Identity: s.accountID}
	case strings.Contains(s.arn, ":role/"):
		name := s.arn[strings.LastIndexByte(s.arn, '/')+1:]
		return awsauth.Entry{Section: awsauth.MapRoles, Identity: "arn:aws:iam::" + account + ":role/" + name, Username: s.username, Groups: s.groups}
	default:
		return awsauth.Entry{Section: awsauth.MapUsers, Identity: s.arn, Username: s.username, Groups: s.groups}
	}
}

func (s spec) object(name string) *iamv1alpha1.IAMIdentityMapping {
	return mappingtest.Mapping(name, mappingtest.WithARN(s.arn), mappingtest.WithAccount(s.accountID),
		mappingtest.WithUsername(s.username), mappingtest.WithGroups(s.groups...))
}

// Kinds of operation, as counted in the report.
const (
	opCreate          = "mapping create"
	opUpdate          = "mapping update"
	opDelete          = "mapping delete"
	opDeleteAWSAuth   = "aws-auth delete (held by the finalizer)"
	opBypassAWSAuth   = "aws-auth delete, finalizer bypassed"
	opOverwrite       = "aws-auth overwritten (delete, create with other data)"
	opDropFinalizer   = "aws-auth finalizer removed"
	opSkipped         = "skipped (aws-auth missing or changed meanwhile)"
	opOverwriteRacing = "overwrite lost the race to the operator"
)

// load is the random operations and the model of what they asked for.
type load struct {
	t   *testing.T
	rng *rand.Rand

	specs   map[string]spec
	names   []string // sorted, for reproducible picks
	deleted []string
	pending map[string]bool // deleted, maybe not yet let go by the operator
	epochs  []epoch
	current map[string]int // index in epochs of each mapping's current spec
	counter int
	counts  map[string]int
	ops     int
}

// newLoad makes the starting mappings (not yet created): the node role
// and a mix of roles (with and without a path), users and accounts.
func newLoad(t *testing.T, scenario uint64) *load {
	l := &load{
		t:       t,
		rng:     rand.New(rand.NewPCG(uint64(*seed), scenario)),
		specs:   map[string]spec{},
		pending: map[string]bool{},
		current: map[string]int{},
		counts:  map[string]int{},
	}
	l.specs[nodesMapping] = spec{
		arn:      "arn:aws:iam::" + account + ":role/eks-nodes",
		username: "system:node:{{EC2PrivateDNSName}}",
		groups:   []string{"system:bootstrappers", "system:nodes"},
	}
	l.names = []string{nodesMapping}
	for range 13 {
		name, s := l.newSpec()
		l.specs[name] = s
		l.names = append(l.names, name)
	}
	slices.Sort(l.names)
	return l
}

// createAll creates the starting mappings, before any operator runs.
func (l *load) createAll(ctx context.Context) {
	l.t.Helper()
	for _, name := range l.names {
		l.startEpoch(name, time.Now())
		if err := k.Create(ctx, l.specs[name].object(name)); err != nil {
			l.t.Fatalf("creating mapping %s: %v", name, err)
		}
	}
}

var someGroups = []string{"dev", "ops", "viewers", "auditors", "system:masters", "platform:admins"}

func (l *load) newSpec() (string, spec) {
	l.counter++
	name := fmt.Sprintf("m-%04d", l.counter)
	switch n := l.rng.IntN(20); {
	case n < 3:
		return name, spec{accountID: fmt.Sprintf("5%011d", l.counter)}
	case n < 8:
		return name, spec{arn: "arn:aws:iam::" + account + ":user/team/" + name, username: name, groups: l.groups()}
	case n < 12:
		return name, spec{arn: "arn:aws:iam::" + account + ":role/teams/x/" + name, username: name + ":{{SessionName}}", groups: l.groups()}
	default:
		return name, spec{arn: "arn:aws:iam::" + account + ":role/" + name, username: name + ":{{SessionName}}", groups: l.groups()}
	}
}

// groups is a random set of groups plus one that no other spec has had,
// so every spec renders an entry of its own: an observer cannot mistake
// an old entry for the new one.
func (l *load) groups() []string {
	var out []string
	for _, g := range someGroups {
		if l.rng.IntN(3) == 0 {
			out = append(out, g)
		}
	}
	return append(out, fmt.Sprintf("rev-%d", l.counter))
}

func (l *load) startEpoch(name string, at time.Time) {
	l.endEpoch(name, at)
	l.current[name] = len(l.epochs)
	l.epochs = append(l.epochs, epoch{name: name, key: entryKey(l.specs[name].entry()), start: at})
}

func (l *load) endEpoch(name string, at time.Time) {
	if i, ok := l.current[name]; ok {
		l.epochs[i].end = at
		delete(l.current, name)
	}
}

// expected is what aws-auth must hold: the entries of the mappings, in
// the documented order (section, then identity without case).
func (l *load) expected() []awsauth.Entry {
	var out []awsauth.Entry
	for _, name := range l.names {
		out = append(out, l.specs[name].entry())
	}
	order := []awsauth.Section{awsauth.MapRoles, awsauth.MapUsers, awsauth.MapAccounts}
	slices.SortFunc(out, func(a, b awsauth.Entry) int {
		return cmp.Or(cmp.Compare(slices.Index(order, a.Section), slices.Index(order, b.Section)),
			strings.Compare(strings.ToLower(a.Identity), strings.ToLower(b.Identity)))
	})
	return out
}

// run does n random operations, one per tick of the pace; before each,
// hook (if any) is told its number, for faults timed to the load.
func (l *load) run(ctx context.Context, n int, hook func(i int)) {
	l.t.Helper()
	ticker := time.NewTicker(*opInterval)
	defer ticker.Stop()
	for i := range n {
		if hook != nil {
			hook(i)
		}
		l.step(ctx)
		select {
		case <-ctx.Done():
			l.t.Fatalf("the load ran out of time after %d operations: %v", i+1, ctx.Err())
		case <-ticker.C:
		}
	}
}

// step does one random operation.
func (l *load) step(ctx context.Context) {
	l.t.Helper()
	l.ops++
	kinds := []struct {
		kind   string
		weight int
	}{
		{opCreate, 20}, {opUpdate, 25}, {opDelete, 15},
		{opDeleteAWSAuth, 10}, {opBypassAWSAuth, 10}, {opOverwrite, 8}, {opDropFinalizer, 8},
	}
	total := 0
	for _, k := range kinds {
		total += k.weight
	}
	pick := l.rng.IntN(total)
	kind := ""
	for _, k := range kinds {
		if pick < k.weight {
			kind = k.kind
			break
		}
		pick -= k.weight
	}
	switch {
	case kind == opCreate && len(l.names) >= maxMappings,
		kind == opDelete && !l.mayDelete(ctx):
		kind = opUpdate
	}
	l.counts[l.do(ctx, kind)]++
}

// do runs one operation and says what it turned out to be.
func (l *load) do(ctx context.Context, kind string) string {
	l.t.Helper()
	switch kind {
	case opCreate:
		name, s := l.newSpec()
		l.specs[name] = s
		l.names = append(l.names, name)
		slices.Sort(l.names)
		l.startEpoch(name, time.Now())
		l.must(k.Create(ctx, s.object(name)), "creating mapping %s", name)
	case opUpdate:
		l.update(ctx, l.pickUpdatable())
	case opDelete:
		name := l.pickDeletable()
		l.endEpoch(name, time.Now())
		delete(l.specs, name)
		l.names = slices.DeleteFunc(l.names, func(n string) bool { return n == name })
		l.deleted = append(l.deleted, name)
		l.pending[name] = true
		l.must(client.IgnoreNotFound(k.Delete(ctx, &iamv1alpha1.IAMIdentityMapping{ObjectMeta: metav1.ObjectMeta{Name: name}})), "deleting mapping %s", name)
	case opDeleteAWSAuth:
		// What `kubectl delete cm aws-auth` sends: the finalizer holds it.
		err := k.Delete(ctx, awsAuthObject(), client.PropagationPolicy(metav1.DeletePropagationBackground))
		if apierrors.IsNotFound(err) {
			return opSkipped
		}
		l.must(err, "deleting aws-auth")
	case opBypassAWSAuth:
		if !bypassDelete(ctx, l.t) {
			return opSkipped
		}
	case opOverwrite:
		bypassDelete(ctx, l.t)
		err := k.Create(ctx, l.intruder())
		if apierrors.IsAlreadyExists(err) {
			return opOverwriteRacing
		}
		l.must(err, "overwriting aws-auth")
	case opDropFinalizer:
		live := &corev1.ConfigMap{}
		if err := k.Get(ctx, managed.AWSAuthKey, live); apierrors.IsNotFound(err) || (err == nil && live.DeletionTimestamp != nil) {
			return opSkipped
		} else if err != nil {
			l.must(err, "reading aws-auth")
		}
		base := live.DeepCopy()
		live.Finalizers = nil
		err := k.Patch(ctx, live, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{}))
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			return opSkipped
		}
		l.must(err, "removing the finalizer of aws-auth")
	}
	return kind
}

func (l *load) must(err error, format string, args ...any) {
	l.t.Helper()
	if err != nil {
		l.t.Fatalf("operation %d: %s: %v", l.ops, fmt.Sprintf(format, args...), err)
	}
}

// update gives a mapping new groups (and now and then a new username); the
// node mapping keeps system:nodes.
func (l *load) update(ctx context.Context, name string) {
	l.t.Helper()
	l.counter++
	s := l.specs[name]
	s.groups = l.groups()
	if name == nodesMapping {
		s.groups = []string{"system:bootstrappers", "system:nodes", fmt.Sprintf("rev-%d", l.counter)}
	} else if l.rng.IntN(4) == 0 {
		s.username = fmt.Sprintf("%s-r%d", name, l.counter)
		if strings.Contains(s.arn, ":role/") {
			s.username += ":{{SessionName}}"
		}
	}
	l.specs[name] = s
	l.startEpoch(name, time.Now())
	patch, err := json.Marshal(map[string]any{"spec": map[string]any{"username": s.username, "groups": s.groups}})
	l.must(err, "encoding")
	// A merge patch without resourceVersion: the operator's own writes
	// (finalizer, status) cannot make it conflict.
	l.must(k.Patch(ctx, &iamv1alpha1.IAMIdentityMapping{ObjectMeta: metav1.ObjectMeta{Name: name}},
		client.RawPatch(types.MergePatchType, patch)), "updating mapping %s", name)
}

// pickUpdatable is a mapping with an ARN: an account mapping has nothing
// to change but its identity.
func (l *load) pickUpdatable() string {
	var names []string
	for _, n := range l.names {
		if l.specs[n].arn != "" {
			names = append(names, n)
		}
	}
	return names[l.rng.IntN(len(names))]
}

func (l *load) pickDeletable() string {
	names := slices.DeleteFunc(slices.Clone(l.names), func(n string) bool { return n == nodesMapping })
	return names[l.rng.IntN(len(names))]
}

// mayDelete keeps deletions clear of the guards (see maxPendingDeletes).
func (l *load) mayDelete(ctx context.Context) bool {
	l.t.Helper()
	if len(l.names) <= minMappings {
		return false
	}
	if len(l.pending) >= maxPendingDeletes {
		for name := range l.pending {
			err := k.Get(ctx, client.ObjectKey{Name: name}, &iamv1alpha1.IAMIdentityMapping{})
			if apierrors.IsNotFound(err) {
				delete(l.pending, name)
			}
		}
	}
	return len(l.pending) < maxPendingDeletes
}

// intruder is aws-auth as someone might recreate it: one entry dropped,
// one role made cluster-admin that no mapping names, written by hand as a
// person would, without the operator's marks.
func (l *load) intruder() *corev1.ConfigMap {
	entries := l.expected()
	drop := l.rng.IntN(len(entries))
	if entries[drop].Section == awsauth.MapRoles && slices.Contains(entries[drop].Groups, "system:nodes") {
		drop = (drop + 1) % len(entries)
	}
	entries = slices.Delete(entries, drop, drop+1)
	entries = append(entries, awsauth.Entry{Section: awsauth.MapRoles, Identity: "arn:aws:iam::999999999999:role/intruder", Username: "intruder", Groups: []string{"system:masters"}})
	cm := awsAuthObject()
	cm.Data = handWritten(entries)
	if l.rng.IntN(2) == 0 {
		cm.Immutable = ptr.To(true)
	}
	return cm
}

// handWritten is aws-auth data as the EKS documentation shows it.
func handWritten(entries []awsauth.Entry) map[string]string {
	var roles, users, accounts strings.Builder
	for _, e := range entries {
		switch e.Section {
		case awsauth.MapRoles:
			writeEntry(&roles, "rolearn", e)
		case awsauth.MapUsers:
			writeEntry(&users, "userarn", e)
		case awsauth.MapAccounts:
			fmt.Fprintf(&accounts, "- %q\n", e.Identity)
		}
	}
	data := map[string]string{}
	for key, b := range map[string]*strings.Builder{"mapRoles": &roles, "mapUsers": &users, "mapAccounts": &accounts} {
		if b.Len() > 0 {
			data[key] = b.String()
		}
	}
	return data
}

func writeEntry(b *strings.Builder, field string, e awsauth.Entry) {
	fmt.Fprintf(b, "- %s: %s\n  username: %q\n", field, e.Identity, e.Username)
	if len(e.Groups) > 0 {
		b.WriteString("  groups:\n")
		for _, g := range e.Groups {
			fmt.Fprintf(b, "  - %q\n", g)
		}
	}
}

func awsAuthObject() *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: managed.AWSAuthKey.Namespace, Name: managed.AWSAuthKey.Name}}
}

// bypassDelete deletes aws-auth past its finalizer, as someone with
// break-glass rights could: it is gone at once. It reports whether there
// was one to delete.
func bypassDelete(ctx context.Context, t *testing.T) bool {
	t.Helper()
	dropFinalizers := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`))
	err := k.Patch(ctx, awsAuthObject(), dropFinalizers)
	if apierrors.IsNotFound(err) {
		return false
	}
	if err != nil {
		t.Fatalf("removing the finalizers of aws-auth: %v", err)
	}
	// The operator may put its finalizer back between the two calls; the
	// delete is then held by it, which is the other kind of delete.
	err = k.Delete(ctx, awsAuthObject())
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatalf("deleting aws-auth: %v", err)
	}
	return err == nil
}

// expectConverged waits until aws-auth holds exactly what the model asks
// for, as the operator writes it, every mapping is Ready, and every
// deleted mapping is gone.
func (l *load) expectConverged(t *testing.T) *corev1.ConfigMap {
	t.Helper()
	return l.expectConvergedWithin(t, timeout)
}

func (l *load) expectConvergedWithin(t *testing.T, within time.Duration) *corev1.ConfigMap {
	t.Helper()
	ctx := context.Background()
	want := l.expected()
	var live *corev1.ConfigMap
	NewWithT(t).Eventually(func(g Gomega) {
		live = &corev1.ConfigMap{}
		g.Expect(k.Get(ctx, managed.AWSAuthKey, live)).To(Succeed())
		g.Expect(live.DeletionTimestamp).To(BeNil(), "aws-auth is terminating")
		g.Expect(live.Finalizers).To(ContainElement(iamv1alpha1.ProtectionFinalizer))
		g.Expect(live.Labels).To(HaveKeyWithValue(iamv1alpha1.ManagedByLabel, iamv1alpha1.ManagedByValue))
		g.Expect(live.Immutable).To(HaveValue(BeTrue()))
		entries, errs := awsauth.Parse(live.Data)
		g.Expect(errs).To(BeEmpty())
		g.Expect(entries).To(Equal(want))
		var list iamv1alpha1.IAMIdentityMappingList
		g.Expect(k.List(ctx, &list)).To(Succeed())
		var names []string
		for _, m := range list.Items {
			names = append(names, m.Name)
			g.Expect(m.DeletionTimestamp).To(BeNil(), "mapping %s is still being deleted", m.Name)
			g.Expect(m.Status.ObservedGeneration).To(Equal(m.Generation), "status of %s is not about its spec", m.Name)
			ready := readyCondition(&m)
			g.Expect(ready).NotTo(BeNil(), "%s has no Ready condition", m.Name)
			g.Expect(ready.Status).To(Equal(metav1.ConditionTrue), "%s: %s", m.Name, ready.Message)
		}
		g.Expect(names).To(ConsistOf(l.names), "the mappings are not those the test made")
	}).WithTimeout(within).WithPolling(100*time.Millisecond).Should(Succeed(), "aws-auth never converged to the render of the mappings")
	return live
}

func readyCondition(m *iamv1alpha1.IAMIdentityMapping) *metav1.Condition {
	for i := range m.Status.Conditions {
		if m.Status.Conditions[i].Type == iamv1alpha1.ConditionReady {
			return &m.Status.Conditions[i]
		}
	}
	return nil
}

// report logs the operations done.
func (l *load) report(t *testing.T) {
	t.Helper()
	var parts []string
	for _, kind := range slices.Sorted(maps.Keys(l.counts)) {
		parts = append(parts, fmt.Sprintf("%s %d", kind, l.counts[kind]))
	}
	figure(t, "%d operations: %s; %d mappings at the end, %d deleted", l.ops, strings.Join(parts, ", "), len(l.names), len(l.deleted))
}
