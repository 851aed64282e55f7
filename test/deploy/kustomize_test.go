package deploy

import (
	"os"
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// kustomizeYAML builds the kustomization in dir as `kubectl kustomize` does.
func kustomizeYAML(t *testing.T, dir string) []byte {
	t.Helper()
	resources, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	out, err := resources.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func kustomizeBuild(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	return decodeManifests(t, kustomizeYAML(t, dir))
}

func TestKustomizeDefaultApplies(t *testing.T) {
	g := NewWithT(t)
	objs := kustomizeBuild(t, filepath.Join(repoRoot, "config", "default"))

	want := append(requiredRefs(defaultNamespace, false), ref{"Namespace", "", defaultNamespace})
	g.Expect(refsOf(objs)).To(ContainElements(want))
	for _, name := range componentPolicies {
		g.Expect(refsOf(objs)).NotTo(ContainElement(HaveField("Name", name)), "%s is opt-in", name)
	}
	checkNamespaces(t, objs, defaultNamespace)
	checkOperator(t, objs, defaultNamespace)
	nsObj := typed[corev1.Namespace](t, find(t, objs, ref{"Namespace", "", defaultNamespace}))
	g.Expect(nsObj.Labels).To(HaveKeyWithValue("pod-security.kubernetes.io/enforce", "restricted"))

	// The Namespace enforces the restricted Pod Security level: a pod
	// template that breaks it comes back as a warning, which apply refuses.
	apply(t, "test-kustomize", objs)
	expectPoliciesEnforced(t, defaultNamespace, false)

	t.Run("samples", func(t *testing.T) {
		samples := kustomizeBuild(t, filepath.Join(repoRoot, "config", "samples"))
		NewWithT(t).Expect(samples).NotTo(BeEmpty())
		applyCustomResources(t, "test-kustomize", samples)
	})

	t.Run("optional components", func(t *testing.T) {
		// What the README tells a person to write: config/default plus the
		// component, from a kustomization of their own (kustomize takes
		// relative paths only).
		objs := userKustomization(t, []string{"protect-rbac", "protect-operator-namespace"}, "")
		want := refsOf(kustomizeBuild(t, filepath.Join(repoRoot, "config", "default")))
		for _, name := range componentPolicies {
			want = append(want, ref{"ValidatingAdmissionPolicy", "", name}, ref{"ValidatingAdmissionPolicyBinding", "", name})
		}
		NewWithT(t).Expect(refsOf(objs)).To(ConsistOf(want))
		apply(t, "test-kustomize", objs)
		expectPoliciesEnforced(t, defaultNamespace, true)
	})
}

// TestApplyRefusesWhatTheServerWarnsAbout checks the check: an unknown
// field and a pod the restricted level forbids are not accepted silently.
func TestApplyRefusesWhatTheServerWarnsAbout(t *testing.T) {
	g := NewWithT(t)
	ns := "apply-check"
	apply(t, "test-apply-check", decodeManifests(t, []byte(`
apiVersion: v1
kind: Namespace
metadata:
  name: `+ns+`
  labels:
    pod-security.kubernetes.io/enforce: restricted
`)))
	unknownField := decodeManifests(t, []byte(`
apiVersion: v1
kind: ConfigMap
metadata:
  name: unknown-field
  namespace: `+ns+`
dta:
  a: b
`))[0]
	g.Expect(applyOne("test-apply-check", unknownField)).To(MatchError(ContainSubstring("dta")))

	privileged := decodeManifests(t, []byte(`
apiVersion: apps/v1
kind: Deployment
metadata:
  name: privileged
  namespace: `+ns+`
spec:
  selector:
    matchLabels: {app: privileged}
  template:
    metadata:
      labels: {app: privileged}
    spec:
      containers:
      - name: c
        image: example
        securityContext:
          privileged: true
`))[0]
	g.Expect(applyOne("test-apply-check", privileged)).To(MatchError(ContainSubstring("PodSecurity")))
}

// userKustomization builds what the README tells a person to write:
// config/default plus components, from a kustomization of their own, with
// extra appended to it (kustomize takes relative paths only).
func userKustomization(t *testing.T, components []string, extra string) []*unstructured.Unstructured {
	t.Helper()
	dir := t.TempDir()
	rel := func(path ...string) string {
		r, err := filepath.Rel(dir, filepath.Join(append([]string{repoRoot}, path...)...))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	kustomization := "resources:\n- " + rel("config", "default") + "\ncomponents:\n"
	for _, c := range components {
		kustomization += "- " + rel("config", "components", c) + "\n"
	}
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(kustomization+extra), 0o600); err != nil {
		t.Fatal(err)
	}
	return kustomizeBuild(t, dir)
}
