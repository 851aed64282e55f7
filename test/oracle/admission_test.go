package oracle

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/controllers"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/managed"
)

// repoRoot is the operator's repository, whose config/ the API server is
// given as shipped.
var repoRoot = filepath.Join("..", "..")

// TestAdmittedMappingsGrantNoPrivilegedIdentity lets a real API server,
// with the CRD, RBAC and admission policies as shipped, decide which of
// many adversarial mappings a mapping editor may create; renders the
// admitted ones as the operator would; and asks the authenticator what
// each gives for every adversarial session name. None may be privileged.
func TestAdmittedMappingsGrantNoPrivilegedIdentity(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane")
	}
	ctx := context.Background()
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(repoRoot, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		env.BinaryAssetsDirectory = filepath.Join(repoRoot, "bin", "controlplane")
	}
	started := time.Now()
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("starting the control plane (run `make controlplane` first): %v", err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stopping the control plane: %v", err)
		}
	})
	t.Logf("control plane started in %s", time.Since(started).Round(time.Millisecond))
	scheme := controllers.NewScheme()
	admin, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "aws-auth-guardian-system"}}); err != nil {
		t.Fatal(err)
	}
	applyConfig(t, admin, "rbac")
	applyConfig(t, admin, "policy")

	mallory, err := env.AddUser(envtest.User{Name: "mallory", Groups: []string{"platform:editors"}}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "mallory-edits-mappings"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "aws-auth-guardian-mapping-editor"},
		Subjects:   []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: "mallory"}},
	}); err != nil {
		t.Fatal(err)
	}
	editor, err := client.New(mallory.Config(), client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}

	// The policies and the binding load asynchronously: wait until the
	// editor may create an ordinary mapping and is refused a privileged one.
	deadline := time.Now().Add(30 * time.Second)
	for {
		errOrdinary := editor.Create(ctx, candidate("ready-ordinary", "team:{{SessionName}}", "viewers"), client.DryRunAll)
		errPrivileged := editor.Create(ctx, candidate("ready-privileged", "intruder", "system:masters"), client.DryRunAll)
		if errOrdinary == nil && errPrivileged != nil && strings.Contains(errPrivileged.Error(), "is privileged") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the policies are not in force after 30s: ordinary mapping: %v; privileged mapping: %v", errOrdinary, errPrivileged)
		}
		time.Sleep(50 * time.Millisecond) // nothing to wait on: the API server loads policies in the background
	}

	usernames, groups := adversarialShapes()
	type attempt struct {
		m   *iamv1alpha1.IAMIdentityMapping
		err error
	}
	var attempts []attempt
	for _, u := range usernames {
		attempts = append(attempts, attempt{m: candidate(fmt.Sprintf("u-%d", len(attempts)), u, "viewers")})
	}
	for _, g := range groups {
		attempts = append(attempts, attempt{m: candidate(fmt.Sprintf("g-%d", len(attempts)), "team:x", g)})
	}
	account := candidate(fmt.Sprintf("a-%d", len(attempts)), "", "")
	account.Spec = iamv1alpha1.IAMIdentityMappingSpec{AccountID: attackerAccount}
	attempts = append(attempts, attempt{m: account})

	decided := time.Now()
	// Dry runs: admission and validation decide them as real creates.
	var wg sync.WaitGroup
	work := make(chan int)
	for range 4 {
		wg.Go(func() {
			for i := range work {
				attempts[i].err = editor.Create(ctx, attempts[i].m, client.DryRunAll)
			}
		})
	}
	for i := range attempts {
		work <- i
	}
	close(work)
	wg.Wait()

	var admitted []awsauth.Mapping
	refusedBy := map[string]int{}
	for _, a := range attempts {
		switch {
		case a.err == nil:
			admitted = append(admitted, managed.MappingInput(a.m))
		case apierrors.IsForbidden(a.err) && strings.Contains(a.err.Error(), "is privileged"):
			refusedBy["policy aws-auth-guardian-prevent-escalation"]++
		case apierrors.IsInvalid(a.err):
			refusedBy["CRD validation"]++
		default:
			t.Errorf("creating %s: unexpected error %v", describe(a.m), a.err)
		}
	}
	t.Logf("%d of %d adversarial mappings admitted; refused: %v", len(admitted), len(attempts), refusedBy)
	if len(admitted) < 50 || refusedBy["policy aws-auth-guardian-prevent-escalation"] < 50 || refusedBy["CRD validation"] < 50 {
		t.Errorf("the shapes do not exercise both sides: %d admitted, refused %v", len(admitted), refusedBy)
	}
	if slices.ContainsFunc(admitted, func(m awsauth.Mapping) bool { return m.AccountID != "" }) {
		t.Errorf("the editor may map the whole account %s", attackerAccount)
	}

	t.Logf("admission decided in %s", time.Since(decided).Round(time.Millisecond))
	// What the operator renders of them: the CRD and the operator judge
	// a mapping alike, so it should be all of them.
	res := awsauth.Resolve(admitted)
	for _, m := range admitted {
		if o := res.Outcomes[m.Name]; o.Err != nil || o.ShadowedBy != "" {
			t.Errorf("the API server admits %s %q %q, which the operator does not render: %v (shadowed by %q)", m.Name, m.Username, m.Groups, o.Err, o.ShadowedBy)
		}
	}
	rendered, err := awsauth.Render(res.Entries)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	a := newAuthenticator(t, rendered.Data)
	sessions := reservedPieceSessions()
	defer func(start time.Time) {
		t.Logf("%d admitted mappings x %d sessions reviewed in %s", len(admitted), len(sessions), time.Since(start).Round(time.Millisecond))
	}(time.Now())
	for _, m := range admitted {
		if m.AccountID != "" {
			continue
		}
		for _, session := range sessions {
			user, groups, err := a.identity(t, m.ARN, session)
			if err != nil {
				continue // a refusal grants nothing
			}
			if why := privileged(user, groups); why != "" {
				t.Errorf("admitted username %q groups %q with session %q: %s", m.Username, m.Groups, session, why)
			}
		}
	}
}

// candidate is a role mapping of the role named after the mapping.
func candidate(name, username, group string) *iamv1alpha1.IAMIdentityMapping {
	m := &iamv1alpha1.IAMIdentityMapping{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       iamv1alpha1.IAMIdentityMappingSpec{ARN: attackerRole(name), Username: iamv1alpha1.IdentityName(username)},
	}
	if group != "" {
		m.Spec.Groups = []iamv1alpha1.IdentityName{iamv1alpha1.IdentityName(group)}
	}
	return m
}

func describe(m *iamv1alpha1.IAMIdentityMapping) string {
	return fmt.Sprintf("%s (username %q groups %q accountID %q)", m.Name, m.Spec.Username, m.Spec.Groups, m.Spec.AccountID)
}

// adversarialShapes are usernames and groups built from pieces of the
// reserved prefixes and every template, in every order of up to three
// pieces the count allows.
func adversarialShapes() (usernames, groups []string) {
	fixed := []string{"", "s", "sys", "system", "system:", "ystem:", ":", "e", "eks", "eks:", "a", "aws", "am", "amazon:",
		"i", "iam:", "aws-auth-guardian:", "team:", " system:", "System:"}
	templates := []string{"{{SessionName}}", "{{SessionNameRaw}}", "{{AccountID}}", "{{AccessKeyID}}", "{{EC2PrivateDNSName}}"}
	set := map[string]bool{}
	for _, f := range fixed {
		set[f+"x"] = true
		for _, tpl := range templates {
			for _, tail := range []string{"", ":x", "tem:x", "{{SessionName}}", ":{{SessionNameRaw}}"} {
				set[f+tpl+tail] = true
			}
		}
	}
	for s := range set {
		if s != "" {
			usernames = append(usernames, s)
		}
	}
	slices.Sort(usernames)
	// Groups: the same pieces; the policy refuses any template in a group,
	// so the fixed ones decide.
	gset := map[string]bool{}
	for _, f := range fixed {
		for _, tail := range []string{"", "masters", "x", ":masters"} {
			gset[f+tail] = true
		}
		gset[f+"{{SessionName}}"] = true
		gset["{{SessionName}}"+f] = true
	}
	for _, g := range []string{"{{SessionName}}:masters", "{{SessionNameRaw}}:nodes", "e{{SessionName}}:x", "{{AccountID}}:{{SessionName}}"} {
		gset[g] = true
	}
	for s := range gset {
		if s != "" {
			groups = append(groups, s)
		}
	}
	slices.Sort(groups)
	return usernames, groups
}

// reservedPieceSessions are the adversarial session names short enough to
// try against every admitted mapping: the pieces of the reserved words.
func reservedPieceSessions() []string {
	set := map[string]bool{}
	for _, w := range []string{"system", "eks", "aws", "amazon", "iam"} {
		for i := range len(w) {
			for j := i + 2; j <= len(w); j++ {
				set[w[i:j]] = true
			}
		}
	}
	for _, s := range []string{"a@b", "system@masters", "i-0123456789abcdef0", "kube-controller-manager", "masters", strings.Repeat("@", 64)} {
		set[s] = true
	}
	var out []string
	for s := range set {
		if stsSessionName.MatchString(s) {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

// applyConfig creates every object of config/<dir> as shipped.
func applyConfig(t *testing.T, c client.Client, dir string) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot, "config", dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no YAML in config/%s: %v", dir, err)
	}
	for _, file := range files {
		if filepath.Base(file) == "kustomization.yaml" {
			continue
		}
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		decoder := utilyaml.NewYAMLOrJSONDecoder(f, 4096)
		for {
			u := &unstructured.Unstructured{}
			if err := decoder.Decode(&u.Object); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			if len(u.Object) == 0 {
				continue
			}
			if err := c.Create(context.Background(), u); err != nil {
				t.Fatalf("%s %s: %v", file, u.GetName(), err)
			}
		}
		_ = f.Close()
	}
}
