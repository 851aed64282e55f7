package chaos

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/accessentry"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/testing/awsfake"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/testing/mappingtest"
)

var (
	aeOps   = flag.Int("chaos.ae-ops", 60, "Random mapping changes of the access entry scenario.")
	aeKills = flag.Int("chaos.ae-kills", 2, "kill -9 of the operator during the access entry scenario.")
)

// The access entry scenario's cluster and what its load keeps to: always
// a cluster admin among the mappings (so that the operator must never
// leave a moment without one), at least aeMinMappings, and at most
// aeMaxPendingDeletes deletions not yet done, so that no plan comes near
// the share of entries one pass may remove.
const (
	aeCluster           = "chaos"
	aeMinMappings       = 10
	aeMaxMappings       = 24
	aeMaxPendingDeletes = 3
	aeRoles             = 40
	clusterAdminPolicy  = "AmazonEKSClusterAdminPolicy"
	aeNodesMapping      = "ae-nodes"
)

// aeSpec is what the test asked of one mapping: a role, groups, and access
// policies by name, each with its namespaces (none: the whole cluster).
type aeSpec struct {
	role     string
	groups   []string
	policies map[string][]string
}

func (s aeSpec) admin() bool {
	ns, ok := s.policies[clusterAdminPolicy]
	return ok && len(ns) == 0
}

func (s aeSpec) object(name string) *iamv1alpha1.IAMIdentityMapping {
	if name == aeNodesMapping {
		return mappingtest.Mapping(name, mappingtest.WithARN(s.role), mappingtest.WithUsername("system:node:{{EC2PrivateDNSName}}"),
			mappingtest.WithGroups("system:bootstrappers", "system:nodes"))
	}
	m := mappingtest.Mapping(name, mappingtest.WithARN(s.role), mappingtest.WithUsername("chaos:"+name), mappingtest.WithGroups(s.groups...))
	m.Spec.AccessPolicies = s.accessPolicies()
	return m
}

func (s aeSpec) accessPolicies() []iamv1alpha1.AccessPolicy {
	var out []iamv1alpha1.AccessPolicy
	for _, p := range slices.Sorted(maps.Keys(s.policies)) {
		ap := iamv1alpha1.AccessPolicy{Policy: p}
		for _, ns := range s.policies[p] {
			ap.Namespaces = append(ap.Namespaces, iamv1alpha1.AccessPolicyNamespace(ns))
		}
		out = append(out, ap)
	}
	return out
}

// matches says how entry differs from what the spec asks, worked out here
// from the documented translation: a STANDARD entry with the mapping's
// username and groups, its policies with their scopes, tagged with the
// mapping's name; the node mapping is an EC2_LINUX entry, whose username
// and groups EKS sets.
func (s aeSpec) matches(name string, e awsfake.AccessEntry) string {
	if e.PrincipalARN != s.role {
		return fmt.Sprintf("principal %s, want %s", e.PrincipalARN, s.role)
	}
	if want := map[string]string{accessentry.MappingTag: name}; !maps.Equal(e.Tags, want) {
		return fmt.Sprintf("tags %v, want %v", e.Tags, want)
	}
	if name == aeNodesMapping {
		if e.Type != awsfake.TypeEC2Linux {
			return "type " + e.Type + ", want " + awsfake.TypeEC2Linux
		}
		return ""
	}
	got := map[string][]string{}
	for _, p := range e.Policies {
		ns := slices.Sorted(slices.Values(p.Scope.Namespaces))
		if (p.Scope.Type == awsfake.ScopeCluster) != (len(ns) == 0) {
			return fmt.Sprintf("policy %s has scope %s with namespaces %v", p.PolicyARN, p.Scope.Type, ns)
		}
		got[p.PolicyARN] = ns
	}
	want := map[string][]string{}
	for p, ns := range s.policies {
		want[awsfake.PolicyARN(p)] = slices.Sorted(slices.Values(ns))
	}
	switch {
	case e.Type != awsfake.TypeStandard:
		return "type " + e.Type
	case e.Username != "chaos:"+name:
		return "username " + e.Username
	case !slices.Equal(slices.Sorted(slices.Values(e.KubernetesGroups)), slices.Sorted(slices.Values(s.groups))):
		return fmt.Sprintf("groups %v, want %v", e.KubernetesGroups, s.groups)
	case !reflect.DeepEqual(normalize(got), normalize(want)):
		return fmt.Sprintf("policies %v, want %v", got, want)
	}
	return ""
}

func normalize(m map[string][]string) map[string][]string {
	out := map[string][]string{}
	for k, v := range m {
		out[k] = append([]string{}, v...)
	}
	return out
}

// hasClusterAdmin says whether any entry has the cluster admin policy on
// the whole cluster: someone can still administer the cluster.
func hasClusterAdmin(entries []awsfake.AccessEntry) bool {
	for _, e := range entries {
		for _, p := range e.Policies {
			if p.PolicyARN == awsfake.PolicyARN(clusterAdminPolicy) && p.Scope.Type == awsfake.ScopeCluster {
				return true
			}
		}
	}
	return false
}

// aeLoad is the random mapping changes and the model of what they asked.
type aeLoad struct {
	t      *testing.T
	rng    *rand.Rand
	fake   *awsfake.Server
	specs  map[string]aeSpec
	next   int
	counts map[string]int
}

func (l *aeLoad) roleARN(i int) string {
	if i%4 == 0 {
		return fmt.Sprintf("arn:aws:iam::%s:role/teams/chaos-%02d", account, i)
	}
	return fmt.Sprintf("arn:aws:iam::%s:role/chaos-%02d", account, i)
}

// freeRole is a role no mapping names, so that no two mappings compete
// for one principal.
func (l *aeLoad) freeRole() string {
	used := map[string]bool{}
	for _, s := range l.specs {
		used[s.role] = true
	}
	for range 100 {
		if r := l.roleARN(l.rng.IntN(aeRoles)); !used[r] {
			return r
		}
	}
	return ""
}

func (l *aeLoad) randomGroups() []string {
	var out []string
	for _, g := range []string{"team-a", "team-b", "readers", "ops"} {
		if l.rng.IntN(3) == 0 {
			out = append(out, g)
		}
	}
	return out
}

func (l *aeLoad) randomPolicies(admin bool) map[string][]string {
	out := map[string][]string{}
	for _, p := range []string{"AmazonEKSViewPolicy", "AmazonEKSEditPolicy", "AmazonEKSAdminPolicy"} {
		if l.rng.IntN(3) != 0 {
			continue
		}
		var ns []string
		for _, n := range []string{"dev", "prod", "team-*"} {
			if l.rng.IntN(2) == 0 {
				ns = append(ns, n)
			}
		}
		out[p] = ns
	}
	if admin {
		out[clusterAdminPolicy] = nil
	}
	return out
}

func (l *aeLoad) admins() int {
	n := 0
	for _, s := range l.specs {
		if s.admin() {
			n++
		}
	}
	return n
}

// pendingDeletes are the deletions the operator has not finished: entries
// tagged with a mapping the model no longer has.
func (l *aeLoad) pendingDeletes() int {
	entries, err := l.fake.Snapshot(aeCluster)
	if err != nil {
		l.t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if m := e.Tags[accessentry.MappingTag]; m != "" {
			if _, ok := l.specs[m]; !ok {
				n++
			}
		}
	}
	return n
}

func (l *aeLoad) create(ctx context.Context, admin bool) error {
	role := l.freeRole()
	if role == "" {
		return nil
	}
	name := fmt.Sprintf("ae-%04d", l.next)
	l.next++
	s := aeSpec{role: role, groups: l.randomGroups(), policies: l.randomPolicies(admin)}
	if err := k.Create(ctx, s.object(name)); err != nil {
		return fmt.Errorf("creating %s: %w", name, err)
	}
	l.specs[name] = s
	l.counts["create"]++
	return nil
}

func (l *aeLoad) update(ctx context.Context, name string, s aeSpec, kind string) error {
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		m := &iamv1alpha1.IAMIdentityMapping{}
		if err := k.Get(ctx, types.NamespacedName{Name: name}, m); err != nil {
			return err
		}
		want := s.object(name)
		m.Spec.Groups, m.Spec.AccessPolicies = want.Spec.Groups, want.Spec.AccessPolicies
		return k.Update(ctx, m)
	})
	if err != nil {
		return fmt.Errorf("updating %s: %w", name, err)
	}
	l.specs[name] = s
	l.counts[kind]++
	return nil
}

// step makes one random change that keeps a cluster admin among the
// mappings.
func (l *aeLoad) step(ctx context.Context) error {
	names := slices.Sorted(maps.Keys(l.specs))
	names = slices.DeleteFunc(names, func(n string) bool { return n == aeNodesMapping })
	name := names[l.rng.IntN(len(names))]
	s := l.specs[name]
	lastAdmin := s.admin() && l.admins() == 1
	switch x := l.rng.IntN(10); {
	case x < 3 && len(l.specs) < aeMaxMappings:
		return l.create(ctx, l.rng.IntN(5) == 0)
	case x < 5 && len(l.specs) > aeMinMappings && !lastAdmin && l.pendingDeletes() < aeMaxPendingDeletes:
		m := &iamv1alpha1.IAMIdentityMapping{}
		m.Name = name
		if err := k.Delete(ctx, m); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("deleting %s: %w", name, err)
		}
		delete(l.specs, name)
		l.counts["delete"]++
		return nil
	case x < 7:
		s.groups = l.randomGroups()
		return l.update(ctx, name, s, "groups changed")
	case x < 9:
		s.policies = l.randomPolicies(lastAdmin || (s.admin() && l.rng.IntN(2) == 0))
		return l.update(ctx, name, s, "policies changed")
	default:
		// The admin policy moves: given to one, taken from another.
		s.policies = maps.Clone(s.policies)
		if s.admin() && !lastAdmin {
			delete(s.policies, clusterAdminPolicy)
			return l.update(ctx, name, s, "cluster admin taken")
		}
		s.policies[clusterAdminPolicy] = nil
		return l.update(ctx, name, s, "cluster admin given")
	}
}

// diff is how the fake's entries differ from the model and the unowned
// entries as seeded; empty when they are exact.
func (l *aeLoad) diff(unowned []awsfake.AccessEntry) []string {
	entries, err := l.fake.Snapshot(aeCluster)
	if err != nil {
		return []string{err.Error()}
	}
	var out []string
	want := maps.Clone(l.specs)
	others := map[string]awsfake.AccessEntry{}
	for _, u := range unowned {
		others[u.PrincipalARN] = u
	}
	for _, e := range entries {
		if u, ok := others[e.PrincipalARN]; ok {
			if !reflect.DeepEqual(u, e) {
				out = append(out, fmt.Sprintf("unowned entry %s touched: %+v, seeded %+v", e.PrincipalARN, e, u))
			}
			delete(others, e.PrincipalARN)
			continue
		}
		name := e.Tags[accessentry.MappingTag]
		s, ok := want[name]
		if !ok {
			out = append(out, fmt.Sprintf("entry %s (tagged %q) is no mapping's", e.PrincipalARN, name))
			continue
		}
		if why := s.matches(name, e); why != "" {
			out = append(out, fmt.Sprintf("entry of %s: %s", name, why))
		}
		delete(want, name)
	}
	for name := range want {
		out = append(out, "no entry for mapping "+name)
	}
	for arn := range others {
		out = append(out, "unowned entry "+arn+" deleted")
	}
	slices.Sort(out)
	return out
}

// eksEnvFor is the operator's environment pointed at the fake, with none
// of the test's own AWS_ variables.
func eksEnvFor(url string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") {
			env = append(env, kv)
		}
	}
	return append(env,
		"AWS_REGION="+awsfake.DefaultRegion, "AWS_ACCESS_KEY_ID=AKIDCHAOS", "AWS_SECRET_ACCESS_KEY=chaos",
		"AWS_ENDPOINT_URL_EKS="+url, "AWS_ENDPOINT_URL_IAM="+url,
		"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_EC2_METADATA_DISABLED=true")
}

// TestAccessEntryChaos drives the access entry target through random
// mapping changes while the operator is killed (-9) and EKS throttles,
// fails and slows down. No state EKS went through may lack a cluster
// admin, the entries nobody gave the operator stay byte for byte as they
// were, and once the faults stop the entries are exactly the translation
// of the last mappings.
func TestAccessEntryChaos(t *testing.T) {
	resetCluster(t)
	ctx := testContext(t)
	g := NewWithT(t)
	fake := awsfake.New(awsfake.WithSeed(uint64(*seed)))
	t.Cleanup(fake.Close)
	_, err := fake.SeedCluster(awsfake.Cluster{Name: aeCluster, AuthenticationMode: awsfake.ModeAPIAndConfigMap})
	g.Expect(err).NotTo(HaveOccurred())
	l := &aeLoad{t: t, rng: rand.New(rand.NewPCG(uint64(*seed), 15)), fake: fake, specs: map[string]aeSpec{}, counts: map[string]int{}}
	var principals []string
	for i := range aeRoles {
		principals = append(principals, l.roleARN(i))
	}
	nodes := "arn:aws:iam::" + account + ":role/ae-nodes"
	unownedSeeds := []awsfake.AccessEntry{
		{PrincipalARN: "arn:aws:iam::" + account + ":role/eks-nodegroup-default", Type: awsfake.TypeEC2Linux},
		{PrincipalARN: "arn:aws:iam::" + account + ":role/by-hand", KubernetesGroups: []string{"by-hand"}, Tags: map[string]string{"team": "platform"},
			Policies: []awsfake.AssociatedPolicy{{PolicyARN: awsfake.PolicyARN("AmazonEKSViewPolicy"), Scope: awsfake.AccessScope{Type: awsfake.ScopeNamespace, Namespaces: []string{"default"}}}}},
	}
	principals = append(principals, nodes)
	for _, u := range unownedSeeds {
		principals = append(principals, u.PrincipalARN)
	}
	g.Expect(fake.SeedPrincipals(principals...)).To(Succeed())
	var unowned []awsfake.AccessEntry
	for _, u := range unownedSeeds {
		e, err := fake.SeedEntry(aeCluster, u)
		g.Expect(err).NotTo(HaveOccurred())
		unowned = append(unowned, e)
	}

	r := newReplica(t, "ae", false)
	r.args = append(r.args, "--eks-cluster-name", aeCluster, "--access-entry-resync", "1s", "--access-entry-full-resync", "5s",
		"--eks-api-qps", "100", "--eks-api-burst", "100")
	r.env = eksEnvFor(fake.URL())
	r.start(t)

	// The start: the node mapping, two cluster admins and a few others.
	l.specs[aeNodesMapping] = aeSpec{role: nodes}
	g.Expect(k.Create(ctx, l.specs[aeNodesMapping].object(aeNodesMapping))).To(Succeed())
	for i := range 12 {
		g.Expect(l.create(ctx, i < 2)).To(Succeed())
	}
	began := time.Now()
	g.Eventually(func() []string { return l.diff(unowned) }).WithTimeout(2*timeout).WithPolling(100*time.Millisecond).Should(BeEmpty(), "the first access entries")
	figure(t, "first %d mappings converged in %v", len(l.specs), time.Since(began).Round(time.Millisecond))

	// From here on, every state EKS goes through has a cluster admin.
	var mu sync.Mutex
	states, lost := 0, []string(nil)
	g.Expect(fake.Observe(aeCluster, func(entries []awsfake.AccessEntry) {
		mu.Lock()
		defer mu.Unlock()
		states++
		if !hasClusterAdmin(entries) && len(lost) < 10 {
			var arns []string
			for _, e := range entries {
				arns = append(arns, e.PrincipalARN)
			}
			lost = append(lost, fmt.Sprintf("state %d at %s: %d entries, none with %s on the cluster: %v", states, time.Now().Format(time.StampMilli), len(entries), clusterAdminPolicy, arns))
		}
	})).To(Succeed())
	t.Cleanup(func() { _ = fake.Observe(aeCluster, nil) })

	// EKS faults in phases, while the load runs.
	faultsDone := make(chan struct{})
	stopFaults := make(chan struct{})
	phases := map[string]int{}
	go func() {
		defer close(faultsDone)
		rng := rand.New(rand.NewPCG(uint64(*seed), 16))
		kinds := []struct {
			name  string
			fault awsfake.Fault
		}{
			{"none", awsfake.Fault{}},
			{"30% throttled, 5% 5xx", awsfake.Fault{ThrottleRate: 0.30, ServerErrorRate: 0.05}},
			{"every call 200 ms", awsfake.Fault{Latency: 200 * time.Millisecond}},
		}
		for i := 1; ; i++ {
			f := kinds[i%len(kinds)]
			fake.SetFault(awsfake.AllOperations, f.fault)
			phases[f.name]++
			select {
			case <-stopFaults:
				fake.ClearFaults()
				return
			case <-time.After(time.Duration(500+rng.IntN(2000)) * time.Millisecond):
			}
		}
	}()

	kills := map[int]bool{}
	for i := 1; i <= *aeKills; i++ {
		kills[i**aeOps/(*aeKills+1)] = true
	}
	killed := 0
	restarted := make(chan error, 1)
	restarted <- nil
	for i := range *aeOps {
		if kills[i] {
			g.Expect(<-restarted).To(Succeed(), "restarting the operator")
			r.kill9(t)
			killed++
			// Down for a while, as a pod is until it is started again;
			// the load goes on meanwhile.
			down := time.Duration(100+l.rng.IntN(400)) * time.Millisecond
			go func() {
				time.Sleep(down)
				_, err := r.launch()
				restarted <- err
			}()
		}
		g.Expect(l.step(ctx)).To(Succeed())
		time.Sleep(*opInterval)
	}
	g.Expect(<-restarted).To(Succeed(), "restarting the operator")
	close(stopFaults)
	<-faultsDone

	loadEnd := time.Now()
	g.Eventually(func() []string { return l.diff(unowned) }).WithTimeout(3*time.Minute).WithPolling(100*time.Millisecond).Should(BeEmpty(),
		"the access entries, a while after the last change and the last fault")
	converged := time.Since(loadEnd)
	mu.Lock()
	defer mu.Unlock()
	calls := fake.Calls()
	failed := 0
	total := 0
	for op := range calls {
		total += calls.Total(op)
		failed += calls.Total(op) - calls[op][awsfake.OutcomeOK]
	}
	figure(t, "%d random changes (%v), %d kill -9, fault phases %v; exact %v after the last change; %d EKS states observed, %d without a cluster admin; %d calls, %d refused or failed",
		*aeOps, l.counts, killed, phases, converged.Round(time.Millisecond), states, len(lost), total, failed)
	g.Expect(lost).To(BeEmpty(), "moments without a cluster admin")
}
