package integration

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/cli"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/managed"
)

// eksAWSAuth is an aws-auth as EKS, eksctl and years of hand edits leave it.
func eksAWSAuth(extraRoles string) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "aws-auth"},
		Data: map[string]string{
			"mapRoles": `- rolearn: arn:aws:iam::111122223333:role/eks-nodes
  username: system:node:{{EC2PrivateDNSName}}
  groups:
  - system:bootstrappers
  - system:nodes
- rolearn: arn:aws:iam::111122223333:role/Admins
  username: old-admin
  groups: [system:masters]
- rolearn: arn:aws:iam::111122223333:role/admins
  username: admin:{{SessionName}}
  groups: [system:masters]
` + extraRoles,
			"mapUsers": `- userarn: arn:aws:iam::111122223333:user/ops/jane
  username: jane
`,
			"mapAccounts": "- \"444455556666\"\n",
		},
	}
}

// servedBefore is what the authenticator serves from eksAWSAuth: the later
// of the two admins entries wins.
var servedBefore = []awsauth.Entry{
	entry(awsauth.MapRoles, "arn:aws:iam::111122223333:role/admins", "admin:{{SessionName}}", "system:masters"),
	entry(awsauth.MapRoles, "arn:aws:iam::111122223333:role/eks-nodes", "system:node:{{EC2PrivateDNSName}}", "system:bootstrappers", "system:nodes"),
	entry(awsauth.MapUsers, "arn:aws:iam::111122223333:user/ops/jane", "jane"),
	entry(awsauth.MapAccounts, "444455556666", ""),
}

func TestAdoptsAnExistingAWSAuth(t *testing.T) {
	startOperator(t, managed.Immutable, eksAWSAuth(""))
	g := NewWithT(t)
	ctx := context.Background()

	g.Eventually(func(g Gomega) {
		cm := getAWSAuth(g)
		g.Expect(cm.Labels).To(HaveKeyWithValue(iamv1alpha1.ManagedByLabel, iamv1alpha1.ManagedByValue))
		g.Expect(liveEntries(g)).To(Equal(servedBefore))
		var list iamv1alpha1.IAMIdentityMappingList
		g.Expect(k.List(ctx, &list)).To(Succeed())
		g.Expect(list.Items).To(HaveLen(len(servedBefore)))
		for _, m := range list.Items {
			g.Expect(m.Labels).To(HaveKeyWithValue("iam.aws-auth-guardian.dev/adopted", "true"))
			expectReady(g, m.Name)
		}
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
}

// TestAdoptsBehindThePolicies: every entry of a real aws-auth is
// privileged (system:masters, system:nodes, a whole account), and the
// operator, which holds no escalate verb, still adopts them all under
// its one exemption.
func TestAdoptsBehindThePolicies(t *testing.T) {
	resetCluster(t)
	create(t, eksAWSAuth(""))
	applyConfig(t, "config/rbac")
	protect(t)
	_, operatorConfig := userClient(t, operatorUser, "system:serviceaccounts", "system:serviceaccounts:aws-auth-guardian-system")
	runOperatorAs(t, operatorConfig, managed.Immutable)
	NewWithT(t).Eventually(func(g Gomega) {
		g.Expect(getAWSAuth(g).Labels).To(HaveKeyWithValue(iamv1alpha1.ManagedByLabel, iamv1alpha1.ManagedByValue))
		g.Expect(liveEntries(g)).To(Equal(servedBefore))
		var list iamv1alpha1.IAMIdentityMappingList
		g.Expect(k.List(context.Background(), &list)).To(Succeed())
		g.Expect(list.Items).To(HaveLen(len(servedBefore)))
		for _, m := range list.Items {
			expectReady(g, m.Name)
		}
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
}

func TestAdoptionWaitsForAPersonOnUnrepresentableEntries(t *testing.T) {
	began := time.Now().Truncate(time.Second)
	unrepresentable := `- rolearn: arn:aws:iam::12345:role/typo
  username: typo
- sso:
    permissionSetName: Admin
    accountID: "111122223333"
  username: sso-admin
`
	startOperator(t, managed.Immutable, eksAWSAuth(unrepresentable))
	g := NewWithT(t)

	// Every entry that can be a mapping becomes one; aws-auth is held as it
	// is, and the event says what to decide.
	var note string
	g.Eventually(func(g Gomega) {
		events := warningEvents(g, iamv1alpha1.ReasonBlocked, began)
		g.Expect(events).NotTo(BeEmpty())
		note = events[0].Note
		g.Expect(note).To(ContainSubstring("arn:aws:iam::12345:role/typo"))
		g.Expect(note).To(ContainSubstring("sso"))
		// Still the same aws-auth, sso entry and all.
		served, errs := awsauth.Parse(getAWSAuth(g).Data)
		g.Expect(errs).To(HaveLen(1))
		g.Expect(served).To(ContainElements(servedBefore))
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
	held := getAWSAuth(g)
	g.Expect(held.Labels).NotTo(HaveKey(iamv1alpha1.ManagedByLabel))
	expectUnchanged(g, held)

	// Allowing that render drops the two, and nothing else.
	match := regexp.MustCompile(iamv1alpha1.AllowRenderAnnotation + `=([0-9a-f]{64})`).FindStringSubmatch(note)
	g.Expect(match).To(HaveLen(2), note)
	allow(g, match[1])
	g.Eventually(func(g Gomega) {
		g.Expect(getAWSAuth(g).Labels).To(HaveKeyWithValue(iamv1alpha1.ManagedByLabel, iamv1alpha1.ManagedByValue))
		g.Expect(liveEntries(g)).To(Equal(servedBefore))
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
}

func TestAnAWSAuthRecreatedBySomeoneElseIsNotAdopted(t *testing.T) {
	startWithMappings(t, managed.Immutable)
	g := NewWithT(t)
	ctx := context.Background()
	cm := getAWSAuth(g)
	forceDelete(g, cm)
	intruder := eksAWSAuth("- rolearn: arn:aws:iam::999999999999:role/intruder\n  username: x\n  groups: [system:masters]\n")
	// The operator may recreate aws-auth first; either way its render must win.
	g.Expect(client.IgnoreAlreadyExists(k.Create(ctx, intruder))).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(liveEntries(g)).To(Equal(baseEntries))
		var list iamv1alpha1.IAMIdentityMappingList
		g.Expect(k.List(ctx, &list)).To(Succeed())
		g.Expect(list.Items).To(HaveLen(len(baseEntries)), "nothing may be adopted from an aws-auth recreated after the operator wrote one")
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
}

func TestNeverWritesAnEmptyRenderOverEntries(t *testing.T) {
	startOperator(t, managed.Immutable)
	g := NewWithT(t)
	ctx := context.Background()
	create(t, role("admins", adminARN, "system:masters"))
	g.Eventually(func(g Gomega) { expectReady(g, "admins") }).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
	before := getAWSAuth(g)

	g.Expect(k.Delete(ctx, mapping("admins"))).To(Succeed())
	expectBlocked(g, "admins", "the render has no entries")
	expectUnchanged(g, before)
}

// TestImportOutputIsAcceptedByTheAPIServer: what `manager import` prints is
// what a person commits and applies, so the API server must take it as is.
func TestImportOutputIsAcceptedByTheAPIServer(t *testing.T) {
	resetCluster(t)
	g := NewWithT(t)
	file := filepath.Join(t.TempDir(), "aws-auth.yaml")
	exported := eksAWSAuth("")
	exported.APIVersion, exported.Kind = "v1", "ConfigMap" // as kubectl get -o yaml prints it
	manifest, err := yaml.Marshal(exported)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(os.WriteFile(file, manifest, 0o600)).To(Succeed())

	var stdout, stderr bytes.Buffer
	code := cli.Execute([]string{"import", "--file", file}, nil, &stdout, &stderr, nil)
	g.Expect(code).To(Equal(0), stderr.String())
	docs := strings.Split(stdout.String(), "\n---\n")
	g.Expect(docs).To(HaveLen(len(servedBefore)))
	for _, doc := range docs {
		u := &unstructured.Unstructured{}
		g.Expect(yaml.Unmarshal([]byte(doc), &u.Object)).To(Succeed())
		g.Expect(k.Create(context.Background(), u)).To(Succeed(), doc)
	}
}
