package chaos

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/managed"
)

// testContext bounds a scenario's API calls and load.
func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 14*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// resetCluster removes what an earlier scenario left: mappings, aws-auth,
// its backup, the Lease, the fault policies. No operator runs then.
func resetCluster(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	g := NewWithT(t)
	dropFinalizers := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`))
	forceDelete := func(obj client.Object) {
		g.Expect(client.IgnoreNotFound(k.Patch(ctx, obj, dropFinalizers))).To(Succeed())
		g.Expect(client.IgnoreNotFound(k.Delete(ctx, obj))).To(Succeed())
	}
	var list iamv1alpha1.IAMIdentityMappingList
	g.Expect(k.List(ctx, &list)).To(Succeed())
	for i := range list.Items {
		forceDelete(&list.Items[i])
	}
	forceDelete(awsAuthObject())
	forceDelete(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: operatorNamespace, Name: managed.BackupName}})
	forceDelete(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: operatorNamespace, Name: denyFlag}})
	forceDelete(&coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: operatorNamespace, Name: leaseName}})
	forceDelete(&admissionregistrationv1.ValidatingAdmissionPolicyBinding{ObjectMeta: metav1.ObjectMeta{Name: denyPolicy}})
	forceDelete(&admissionregistrationv1.ValidatingAdmissionPolicy{ObjectMeta: metav1.ObjectMeta{Name: denyPolicy}})
	g.Eventually(func(g Gomega) {
		var list iamv1alpha1.IAMIdentityMappingList
		g.Expect(k.List(ctx, &list)).To(Succeed())
		g.Expect(list.Items).To(BeEmpty())
		g.Expect(apierrors.IsNotFound(k.Get(ctx, managed.AWSAuthKey, &corev1.ConfigMap{}))).To(BeTrue())
		g.Expect(apierrors.IsNotFound(k.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: managed.BackupName}, &corev1.ConfigMap{}))).To(BeTrue())
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
}

// expectStable checks there is no hot loop: once converged, neither
// aws-auth nor any mapping is written again.
func expectStable(t *testing.T, converged *corev1.ConfigMap) {
	t.Helper()
	ctx := context.Background()
	versions := func(g Gomega) map[string]string {
		var list iamv1alpha1.IAMIdentityMappingList
		g.Expect(k.List(ctx, &list)).To(Succeed())
		out := map[string]string{}
		for _, m := range list.Items {
			out[m.Name] = m.ResourceVersion
		}
		return out
	}
	g := NewWithT(t)
	before := versions(g)
	g.Consistently(func(g Gomega) {
		live := &corev1.ConfigMap{}
		g.Expect(k.Get(ctx, managed.AWSAuthKey, live)).To(Succeed())
		g.Expect(live.ResourceVersion).To(Equal(converged.ResourceVersion), "aws-auth is still being written")
		g.Expect(versions(g)).To(Equal(before), "mappings are still being written")
	}).WithTimeout(time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())
}

// checkAbsences stops the observer and checks, in what both observers
// saw, that no settled mapping's entry was missing from aws-auth for
// longer than the bounds, and reports the figures.
func checkAbsences(t *testing.T, o *observer, l *load, downs []window) {
	t.Helper()
	o.stop()
	end := time.Now()
	watched, polled := o.watched.observations(), o.polled.observations()
	g := NewWithT(t)
	g.Expect(watched).NotTo(BeEmpty(), "the watcher saw nothing")
	g.Expect(polled).NotTo(BeEmpty(), "the poller saw nothing")
	for _, view := range []struct {
		name string
		obs  []observation
	}{{"watch", watched}, {"poll", polled}} {
		s := statsOf(absences(view.obs, l.epochs, downs, end))
		gaps, longestGap := missing(view.obs, end)
		figure(t, "%s (%d observations): a settled mapping's entry missing %d times while an operator ran, longest %s; %d times across an operator outage, longest once it was back %s; %v missing summed over mappings; aws-auth itself missing %d times (faults included), longest %v",
			view.name, len(view.obs), s.count, s.longest, s.countAfterDown, s.longestAfterDown, s.total.Round(time.Millisecond), gaps, longestGap.Round(time.Millisecond))
		g.Expect(s.longest.length).To(BeNumerically("<=", *absenceBound),
			"%s: an entry was missing from aws-auth for longer than %v while an operator ran: %s", view.name, *absenceBound, s.longest)
		g.Expect(s.longestAfterDown.length).To(BeNumerically("<=", *restartBound),
			"%s: an entry was still missing %v after the operator was back: %s", view.name, *restartBound, s.longestAfterDown)
	}
	if o.watchRestarts > 0 || o.pollErrors > 0 {
		figure(t, "observers: watch re-listed %d times, %d polls failed", o.watchRestarts, o.pollErrors)
	}
}

// operatorEvents lists the operator's events of one type since a moment
// (the control plane, and its events, outlive each scenario).
func operatorEvents(g Gomega, eventType string, since time.Time) []eventsv1.Event {
	var list eventsv1.EventList
	g.Expect(k.List(context.Background(), &list)).To(Succeed())
	var out []eventsv1.Event
	for _, e := range list.Items {
		if e.ReportingController == "aws-auth-guardian" && e.Type == eventType && !e.EventTime.Time.Before(since) {
			out = append(out, e)
		}
	}
	return out
}

// expectNoWarnings checks the operator warned about nothing: under this
// load no guard may fire and no mapping may be invalid or in conflict.
func expectNoWarnings(t *testing.T, since time.Time) {
	t.Helper()
	g := NewWithT(t)
	warnings := operatorEvents(g, corev1.EventTypeWarning, since)
	var said []string
	for _, e := range warnings {
		said = append(said, fmt.Sprintf("%s %s: %s", e.Reason, e.Regarding.Name, e.Note))
	}
	g.Expect(said).To(BeEmpty(), "the operator warned")
}

// expectOneLeader waits until exactly one replica says it leads, and
// returns it.
func expectOneLeader(t *testing.T, replicas ...*replica) *replica {
	t.Helper()
	var leader *replica
	NewWithT(t).Eventually(func(g Gomega) {
		leader = nil
		var leaders []string
		for _, r := range replicas {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			is, err := r.isLeader(ctx)
			cancel()
			if err == nil && is {
				leader = r
				leaders = append(leaders, r.name)
			}
		}
		g.Expect(leaders).To(HaveLen(1), "replicas leading")
	}).WithTimeout(2 * timeout).WithPolling(50 * time.Millisecond).Should(Succeed())
	return leader
}

func getLease(g Gomega) *coordinationv1.Lease {
	lease := &coordinationv1.Lease{}
	g.Expect(k.Get(context.Background(), client.ObjectKey{Namespace: operatorNamespace, Name: leaseName}, lease)).To(Succeed())
	return lease
}

func holder(lease *coordinationv1.Lease) string {
	if lease.Spec.HolderIdentity == nil {
		return ""
	}
	return *lease.Spec.HolderIdentity
}

// durations is a set of measured times, for min, median and max.
type durations []time.Duration

func (d durations) String() string {
	if len(d) == 0 {
		return "none"
	}
	s := slices.Clone(d)
	slices.Sort(s)
	var parts []string
	for _, x := range d {
		parts = append(parts, x.Round(time.Millisecond).String())
	}
	return fmt.Sprintf("min %v, median %v, max %v (%s)", s[0].Round(time.Millisecond),
		s[len(s)/2].Round(time.Millisecond), s[len(s)-1].Round(time.Millisecond), strings.Join(parts, " "))
}

// missing counts the times aws-auth itself was seen missing, whatever the
// cause (the faults included), and the longest.
func missing(obs []observation, end time.Time) (int, time.Duration) {
	count, longest := 0, time.Duration(0)
	var since time.Time
	for _, o := range obs {
		switch {
		case !o.present && since.IsZero():
			since = o.at
		case o.present && !since.IsZero():
			count++
			longest = max(longest, o.at.Sub(since))
			since = time.Time{}
		}
	}
	if !since.IsZero() {
		count++
		longest = max(longest, end.Sub(since))
	}
	return count, longest
}
