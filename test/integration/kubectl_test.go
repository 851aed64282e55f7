package integration

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/envtest"

	. "github.com/onsi/gomega"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/managed"
)

// kubectlAs returns a function that runs the real kubectl as a cluster
// admin, returning what it printed.
func kubectlAs(t *testing.T) func(args ...string) (stdout, stderr string, err error) {
	t.Helper()
	admin, err := testEnv.AddUser(envtest.User{Name: "kubectl-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	k, err := admin.Kubectl()
	if err != nil {
		t.Fatal(err)
	}
	return func(args ...string) (string, string, error) {
		outR, errR, err := k.Run(args...)
		out, _ := io.ReadAll(outR)
		errOut, _ := io.ReadAll(errR)
		return string(out), string(errOut), err
	}
}

// row is the line of `kubectl get` output for one mapping, split into
// its cells.
func row(g Gomega, table, name string) []string {
	for _, line := range strings.Split(table, "\n") {
		if cells := strings.Fields(line); len(cells) > 0 && cells[0] == name {
			return cells
		}
	}
	g.Expect(table).To(ContainSubstring(name), "no row for %s", name)
	return nil
}

// TestKubectlOutputAPersonReads is what a person sees of the mappings,
// printed by kubectl itself from the CRD's columns and the events on the
// mappings: the samples, an account mapping and one in conflict.
func TestKubectlOutputAPersonReads(t *testing.T) {
	began := time.Now()
	startOperator(t, managed.Immutable)
	g := NewWithT(t)
	kubectl := kubectlAs(t)

	if out, stderr, err := kubectl("apply", "-k", "../../config/samples"); err != nil {
		t.Fatalf("kubectl apply -k config/samples: %v\n%s%s", err, out, stderr)
	}
	create(t, mapping("whole-account", withAccount("444455556666")))
	g.Eventually(func(g Gomega) {
		expectReady(g, "nodes", "admins", "ci-deployer", "whole-account")
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
	// The same role as admins without its path: younger, so it is the one
	// left out.
	create(t, mapping("admins-copy", withARN("arn:aws:iam::111122223333:role/admins"), withUsername("copy")))
	g.Eventually(func(g Gomega) {
		g.Expect(readyCondition(g, "admins-copy").Reason).To(Equal(iamv1alpha1.ReasonConflict))
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())

	table, stderr, err := kubectl("get", "iim")
	g.Expect(err).NotTo(HaveOccurred(), stderr)
	t.Logf("kubectl get iim:\n%s", table)
	lines := strings.Split(strings.TrimSpace(table), "\n")
	g.Expect(strings.Fields(lines[0])).To(Equal([]string{"NAME", "IDENTITY", "USERNAME", "READY", "REASON", "AGE"}))
	for _, line := range lines {
		g.Expect(len(line)).To(BeNumerically("<=", 120), "too wide for a terminal: %q", line)
	}
	// The identity as written to aws-auth: the role's path stripped, the
	// account ID for an account.
	g.Expect(row(g, table, "admins")[1]).To(Equal("arn:aws:iam::111122223333:role/admins"))
	g.Expect(row(g, table, "ci-deployer")[1]).To(Equal("arn:aws:iam::111122223333:user/ci/deployer"))
	g.Expect(row(g, table, "whole-account")[1:2]).To(Equal([]string{"444455556666"}))
	g.Expect(row(g, table, "admins-copy")[3:5]).To(Equal([]string{"False", iamv1alpha1.ReasonConflict}))

	wide, stderr, err := kubectl("get", "iim", "-o", "wide")
	g.Expect(err).NotTo(HaveOccurred(), stderr)
	t.Logf("kubectl get iim -o wide:\n%s", wide)
	g.Expect(strings.Fields(strings.SplitN(wide, "\n", 2)[0])).To(Equal(
		[]string{"NAME", "IDENTITY", "USERNAME", "READY", "REASON", "ACCESS-ENTRY", "AGE", "GROUPS", "ARN", "MESSAGE"}))
	g.Expect(row(g, wide, "admins")).To(ContainElement("arn:aws:iam::111122223333:role/platform/admins"))
	g.Expect(row(g, wide, "admins-copy")).To(ContainElement("admins"), "the message names the mapping it conflicts with")

	// Events on the mapping itself, so that describe tells its story.
	g.Eventually(func(g Gomega) {
		described, stderr, err := kubectl("describe", "iim", "admins")
		g.Expect(err).NotTo(HaveOccurred(), stderr)
		g.Expect(described).To(MatchRegexp(`Normal\s+Applied\s+.*The entry is in kube-system/aws-auth mapRoles`))
		t.Logf("kubectl describe iim admins:\n%s", described)
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
	var described string
	g.Eventually(func(g Gomega) {
		var stderr string
		var err error
		described, stderr, err = kubectl("describe", "iim", "admins-copy")
		g.Expect(err).NotTo(HaveOccurred(), stderr)
		g.Expect(described).To(MatchRegexp(`Warning\s+Conflict\s+.*IAMIdentityMapping admins is older`))
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
	t.Logf("kubectl describe iim admins-copy:\n%s", described)

	// kubectl wait on a Stalled mapping: it times out, as kubectl does for
	// any condition that does not come; kubectl get says why.
	_, stderr, err = kubectl("wait", "--for=condition=Ready", "iim/admins-copy", "--timeout=2s")
	g.Expect(err).To(HaveOccurred())
	g.Expect(stderr).To(ContainSubstring("timed out waiting for the condition"))
	t.Logf("kubectl wait on a Stalled mapping: %s", stderr)

	// A mapping deleted: its entry leaves, and the mapping says so last.
	g.Expect(k.Delete(context.Background(), mapping("ci-deployer"))).To(Succeed())
	g.Eventually(func(g Gomega) {
		var removed []string
		for _, e := range normalEvents(g, "Removed", began) {
			if e.Regarding.Name == "ci-deployer" {
				removed = append(removed, e.Note)
			}
		}
		g.Expect(removed).To(ConsistOf(ContainSubstring("arn:aws:iam::111122223333:user/ci/deployer")))
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
}
