package integration

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/managed"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/testing/mappingtest"
)

// The builders are shared with the chaos suite and the bench.
var (
	mapping      = mappingtest.Mapping
	withARN      = mappingtest.WithARN
	withUsername = mappingtest.WithUsername
	withGroups   = mappingtest.WithGroups
	withAccount  = mappingtest.WithAccount
	// role is an ordinary role mapping, username "<name>:{{SessionName}}".
	role = mappingtest.Role
)

func create(t *testing.T, objs ...client.Object) {
	t.Helper()
	for _, o := range objs {
		if err := k.Create(context.Background(), o); err != nil {
			t.Fatalf("creating %s: %v", o.GetName(), err)
		}
	}
}

func getAWSAuth(g Gomega) *corev1.ConfigMap {
	cm := &corev1.ConfigMap{}
	g.Expect(k.Get(context.Background(), managed.AWSAuthKey, cm)).To(Succeed())
	return cm
}

// liveEntries reads the entries of the live aws-auth, failing on anything
// the authenticator could not read.
func liveEntries(g Gomega) []awsauth.Entry {
	entries, errs := awsauth.Parse(getAWSAuth(g).Data)
	g.Expect(errs).To(BeEmpty())
	return entries
}

// entry is an expected aws-auth entry, written out by hand in each test.
func entry(section awsauth.Section, identity, username string, groups ...string) awsauth.Entry {
	if len(groups) == 0 {
		groups = nil
	}
	return awsauth.Entry{Section: section, Identity: identity, Username: username, Groups: groups}
}

func readyCondition(g Gomega, name string) *metav1.Condition {
	m := &iamv1alpha1.IAMIdentityMapping{}
	g.Expect(k.Get(context.Background(), client.ObjectKey{Name: name}, m)).To(Succeed())
	g.Expect(m.Status.ObservedGeneration).To(Equal(m.Generation), "status of %s is not about its current spec", name)
	c := readyConditionOf(m)
	g.Expect(c).NotTo(BeNil(), "%s has no Ready condition", name)
	return c
}

func readyConditionOf(m *iamv1alpha1.IAMIdentityMapping) *metav1.Condition {
	return meta.FindStatusCondition(m.Status.Conditions, iamv1alpha1.ConditionReady)
}

func expectReady(g Gomega, names ...string) {
	for _, name := range names {
		c := readyCondition(g, name)
		g.Expect(c.Status).To(Equal(metav1.ConditionTrue), "%s: %s", name, c.Message)
		g.Expect(c.Reason).To(Equal(iamv1alpha1.ReasonApplied))
	}
}

func runtimeFromUnstructured(u *unstructured.Unstructured, into any) error {
	return runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, into)
}

func normalEvents(g Gomega, reason string, since time.Time) []eventsv1.Event {
	return eventsOf(g, corev1.EventTypeNormal, reason, since)
}

func warningEvents(g Gomega, reason string, since time.Time) []eventsv1.Event {
	return eventsOf(g, corev1.EventTypeWarning, reason, since)
}

// eventsOf lists the operator's events of one type and reason emitted since
// a test began: the control plane, and its events, outlive each test.
func eventsOf(g Gomega, eventType, reason string, since time.Time) []eventsv1.Event {
	var list eventsv1.EventList
	g.Expect(k.List(context.Background(), &list)).To(Succeed())
	var matching []eventsv1.Event
	for _, e := range list.Items {
		if e.Type == eventType && e.Reason == reason && e.ReportingController == "aws-auth-guardian" && !e.EventTime.Time.Before(since) {
			matching = append(matching, e)
		}
	}
	return matching
}

// expectRecreated waits until aws-auth is a new object, not terminating,
// holding exactly want.
func expectRecreated(g Gomega, before *corev1.ConfigMap, want []awsauth.Entry) {
	g.Eventually(func(g Gomega) {
		live := getAWSAuth(g)
		g.Expect(live.UID).NotTo(Equal(before.UID))
		g.Expect(live.DeletionTimestamp).To(BeNil())
		g.Expect(liveEntries(g)).To(Equal(want))
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
}
