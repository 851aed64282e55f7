package chaos

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws-auth-guardian/aws-auth-guardian/internal/managed"
	. "github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The fault: a ValidatingAdmissionPolicy that denies every CREATE of
// aws-auth while the ConfigMap denyFlag exists (its parameter; without it
// the binding allows). The API server, not a hook in the operator, refuses.
const (
	denyPolicy = "chaos-deny-aws-auth-create"
	denyFlag   = "chaos-deny-aws-auth-create"
	// deniedCreates is how many failed attempts the fault lasts for, at
	// least: enough for the backoff to show.
	deniedCreates = 6
	// baseRetryDelay is the first delay of controller-runtime's default
	// rate limiter, which doubles it at each failure of the same key.
	baseRetryDelay = 5 * time.Millisecond
)

// TestCreateDeniedAfterDelete: a person deletes aws-auth; the operator
// releases the finalizer and its create of the new aws-auth is denied, the
// one window without aws-auth held open. It retries, with backoff, and
// recovers once the fault is lifted; its metrics count the failures and
// the recreation, and its events say aws-auth was restored.
func TestCreateDeniedAfterDelete(t *testing.T) {
	resetCluster(t)
	ctx := testContext(t)
	g := NewWithT(t)
	l := newLoad(t, scenarioDeniedCreate)
	l.createAll(ctx)
	op := newReplica(t, "operator", false)
	op.start(t)
	l.expectConverged(t)
	op.expectReady(t)
	o := startObserver(t)

	before := scrape(t, op)
	errorsBefore := before.sum("controller_runtime_reconcile_errors_total", "controller", "aws-auth")
	recreatedBefore := before.sum("aws_auth_guardian_recreations_total")
	missingBefore := before.sum("aws_auth_guardian_recreations_total", "cause", "missing")
	denyCreates(t)

	began := time.Now()
	deleted := deleteHeld(ctx, t)
	g.Expect(deleted).NotTo(BeEmpty())
	// The old object is gone and the new one cannot be created: the
	// operator fails and retries until the fault is lifted.
	var failures float64
	g.Eventually(func(g Gomega) {
		err := k.Get(ctx, managed.AWSAuthKey, &corev1.ConfigMap{})
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "aws-auth: %v", err)
		failures = scrape(t, op).sum("controller_runtime_reconcile_errors_total", "controller", "aws-auth") - errorsBefore
		g.Expect(failures).To(BeNumerically(">=", deniedCreates), "the operator did not retry")
	}).WithTimeout(timeout).WithPolling(5 * time.Millisecond).Should(Succeed())
	lifted := time.Now()
	g.Expect(k.Delete(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: operatorNamespace, Name: denyFlag}})).To(Succeed())

	var healed time.Time
	g.Eventually(func() error {
		healed = time.Now()
		return k.Get(ctx, managed.AWSAuthKey, &corev1.ConfigMap{})
	}).WithTimeout(timeout).WithPolling(5 * time.Millisecond).Should(Succeed())
	live := l.expectConverged(t)
	g.Expect(live.UID).NotTo(Equal(deleted))

	after := scrape(t, op)
	failures = after.sum("controller_runtime_reconcile_errors_total", "controller", "aws-auth") - errorsBefore
	g.Expect(failures).To(BeNumerically(">=", deniedCreates))
	// The finalizer was released, so the retry found aws-auth missing
	// and restored the data last applied: counted as a recreation of a
	// missing aws-auth.
	recreated := after.sum("aws_auth_guardian_recreations_total", "cause", "missing") - missingBefore
	g.Expect(recreated).To(Equal(1.0))
	g.Expect(after.sum("aws_auth_guardian_recreations_total") - recreatedBefore).To(Equal(1.0))
	g.Expect(after.sum("aws_auth_guardian_aws_auth_present")).To(Equal(1.0))
	g.Eventually(func(g Gomega) {
		var names []string
		for _, e := range operatorEvents(g, corev1.EventTypeNormal, began.Truncate(time.Second)) {
			if e.Regarding.UID == live.UID {
				names = append(names, e.Reason)
			}
		}
		g.Expect(names).To(ContainElement("Restored"), "no event says aws-auth was restored")
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
	var warned []string
	for _, e := range operatorEvents(g, corev1.EventTypeWarning, began.Truncate(time.Second)) {
		warned = append(warned, e.Reason+": "+e.Note)
	}

	// The log names the refusal, once per failed attempt, and the gaps
	// between attempts grow: the retries back off.
	attempts := deniedAttempts(t, op.logPath)
	g.Expect(attempts).NotTo(BeEmpty(), "the operator's log does not say the create was denied")
	g.Expect(len(attempts)).To(BeNumerically(">=", deniedCreates))
	// The first retry may come at once: the watch event of the released
	// aws-auth (gone) queues the key without backoff. From then on only
	// the rate limiter brings the retries.
	var gaps durations
	for i := 1; i < len(attempts); i++ {
		gap := attempts[i].Sub(attempts[i-1])
		gaps = append(gaps, gap)
		if i >= 2 {
			g.Expect(gap).To(BeNumerically(">=", baseRetryDelay<<(i-1)), "retry %d came too soon: no backoff", i)
		}
	}
	figure(t, "create of aws-auth denied %d times (reconcile errors +%.0f), the gaps between attempts %v; aws-auth missing %v in all, back %v after the fault was lifted",
		len(attempts), failures, gapList(gaps), healed.Sub(began).Round(time.Millisecond), healed.Sub(lifted).Round(time.Millisecond))
	if len(warned) == 0 {
		warned = []string{"none"}
	}
	figure(t, "metrics: controller_runtime_reconcile_errors_total{controller=\"aws-auth\"} +%.0f, aws_auth_guardian_recreations_total{cause=\"missing\"} +%.0f; events: Normal Restored for the new aws-auth; Warning events: %s",
		failures, recreated, strings.Join(warned, "; "))

	// The outage the fault held open is the fault's; once lifted, the
	// bounds apply.
	checkAbsences(t, o, l, []window{{from: began, to: lifted}})
}

// denyCreates installs the fault and waits until the API server enforces
// it; it is removed when the test ends.
func denyCreates(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	g := NewWithT(t)
	policy := &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: denyPolicy},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr.To(admissionregistrationv1.Fail),
			ParamKind:     &admissionregistrationv1.ParamKind{APIVersion: "v1", Kind: "ConfigMap"},
			MatchConstraints: &admissionregistrationv1.MatchResources{
				ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
					ResourceNames: []string{managed.AWSAuthKey.Name},
					RuleWithOperations: admissionregistrationv1.RuleWithOperations{
						Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
						Rule: admissionregistrationv1.Rule{
							APIGroups:   []string{""},
							APIVersions: []string{"v1"},
							Resources:   []string{"configmaps"},
						},
					},
				}},
			},
			MatchConditions: []admissionregistrationv1.MatchCondition{{
				Name:       "aws-auth-namespace",
				Expression: "request.namespace == '" + managed.AWSAuthKey.Namespace + "'",
			}},
			Validations: []admissionregistrationv1.Validation{{
				Expression: "request.operation != 'CREATE'",
				Message:    "chaos: creating aws-auth is denied while " + operatorNamespace + "/" + denyFlag + " exists",
			}},
		},
	}
	binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: denyPolicy},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName: denyPolicy,
			ParamRef: &admissionregistrationv1.ParamRef{
				Name:                    denyFlag,
				Namespace:               operatorNamespace,
				ParameterNotFoundAction: ptr.To(admissionregistrationv1.AllowAction),
			},
			ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
		},
	}
	flag := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: operatorNamespace, Name: denyFlag}}
	t.Cleanup(func() {
		for _, obj := range []client.Object{binding, policy, flag} {
			_ = client.IgnoreNotFound(k.Delete(ctx, obj))
		}
	})
	for _, obj := range []client.Object{flag, policy, binding} {
		g.Expect(k.Create(ctx, obj)).To(Succeed())
	}
	// A dry-run create of aws-auth (which exists) is denied only by the
	// policy: without it, it fails as AlreadyExists.
	g.Eventually(func(g Gomega) {
		err := k.Create(ctx, awsAuthObject(), client.DryRunAll)
		g.Expect(err).To(HaveOccurred())
		g.Expect(err.Error()).To(ContainSubstring(denyPolicy))
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed(), "the fault never took effect")
}

func scrape(t *testing.T, r *replica) samples {
	t.Helper()
	var s samples
	NewWithT(t).Eventually(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		var err error
		s, err = r.metrics(ctx)
		return err
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed(), "scraping operator %s", r.name)
	return s
}

// deniedAttempts reads the times of the operator's failed reconciles that
// name the policy, from its JSON log.
func deniedAttempts(t *testing.T, path string) []time.Time {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	var out []time.Time
	scanner := bufio.NewScanner(f)
	scanner.Buffer(make([]byte, 0, 64*1024), 4<<20)
	for scanner.Scan() {
		line := scanner.Text()
		if !strings.Contains(line, denyPolicy) {
			continue
		}
		var entry struct {
			TS  string `json:"ts"`
			Msg string `json:"msg"`
		}
		if err := json.Unmarshal([]byte(line), &entry); err != nil || entry.Msg != "Reconciler error" {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, entry.TS)
		if err != nil {
			t.Fatalf("log time %q: %v", entry.TS, err)
		}
		out = append(out, at)
	}
	if err := scanner.Err(); err != nil {
		t.Fatal(fmt.Errorf("reading %s: %w", path, err))
	}
	return out
}

func gapList(d durations) string {
	var parts []string
	for _, x := range d {
		parts = append(parts, x.Round(time.Millisecond).String())
	}
	return strings.Join(parts, " ")
}
