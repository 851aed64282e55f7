package deploy

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/lint/support"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// releaseNamespace is not the default one, so that everything the chart
// must derive from the release namespace is seen to be derived.
const releaseNamespace = "guardian-test"

func chartDir() string { return filepath.Join(repoRoot, "charts", "aws-auth-guardian") }

func kubeVersion(t *testing.T) *chartutil.KubeVersion {
	t.Helper()
	kv, err := chartutil.ParseKubeVersion(serverVersion)
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

// helmTemplate renders the chart as `helm template` (or `helm install
// --dry-run`) does for the envtest API server's version.
func helmTemplate(t *testing.T, values map[string]any) (string, error) {
	t.Helper()
	chrt, err := loader.Load(chartDir())
	if err != nil {
		t.Fatal(err)
	}
	install := action.NewInstall(&action.Configuration{Log: func(string, ...any) {}})
	install.DryRun = true
	install.ClientOnly = true
	install.ReleaseName = "aws-auth-guardian"
	install.Namespace = releaseNamespace
	install.KubeVersion = kubeVersion(t)
	rel, err := install.Run(chrt, values)
	if err != nil {
		return "", err
	}
	return rel.Manifest, nil
}

func helmRender(t *testing.T, values map[string]any) []*unstructured.Unstructured {
	t.Helper()
	manifest, err := helmTemplate(t, values)
	if err != nil {
		t.Fatalf("rendering the chart with %v: %v", values, err)
	}
	return decodeManifests(t, []byte(manifest))
}

// configRefs is what config/default installs (with the optional
// components), with the operator's namespace replaced by ns, but the
// Namespace, which a Helm release does not own.
func configRefs(t *testing.T, ns string, components bool) []ref {
	t.Helper()
	var refs []ref
	for _, o := range kustomizeBuild(t, filepath.Join(repoRoot, "config", "default")) {
		if o.GetKind() == "Namespace" {
			continue
		}
		r := refOf(o)
		r.Namespace = strings.ReplaceAll(r.Namespace, defaultNamespace, ns)
		refs = append(refs, r)
	}
	if components {
		for _, name := range componentPolicies {
			refs = append(refs, ref{"ValidatingAdmissionPolicy", "", name}, ref{"ValidatingAdmissionPolicyBinding", "", name})
		}
	}
	return refs
}

// configObjects is the CRD, the RBAC and the admission policies of config/
// (and the optional components), as its files say, with the operator's
// namespace replaced by ns. They are read from the files, not from a
// kustomize build: kustomize re-serializes a folded CEL expression with an
// extra blank line.
func configObjects(t *testing.T, ns string, components bool) []*unstructured.Unstructured {
	t.Helper()
	var text strings.Builder
	for _, configDir := range slices.Sorted(maps.Values(chartCopies)) {
		if strings.HasPrefix(configDir, "config/components/") && !components || slices.Contains(monitoringCopies, configDir) {
			continue
		}
		for _, res := range kustomizationResources(t, filepath.Join(repoRoot, configDir)) {
			data, err := os.ReadFile(filepath.Join(repoRoot, configDir, res))
			if err != nil {
				t.Fatal(err)
			}
			text.WriteString("\n---\n")
			text.Write(data)
		}
	}
	return decodeManifests(t, []byte(strings.ReplaceAll(text.String(), defaultNamespace, ns)))
}

// withComponents are the values that render the optional components.
var withComponents = map[string]any{"protectRBAC": true, "protectOperatorNamespace": true}

func TestHelmChart(t *testing.T) {
	for name, values := range map[string]map[string]any{"defaults": nil, "components": withComponents} {
		t.Run("lint "+name, func(t *testing.T) {
			lint := action.NewLint()
			lint.Strict = true
			lint.Namespace = releaseNamespace
			lint.KubeVersion = kubeVersion(t)
			result := lint.Run([]string{chartDir()}, values)
			g := NewWithT(t)
			g.Expect(result.TotalChartsLinted).To(Equal(1))
			g.Expect(result.Errors).To(BeEmpty(), "helm lint with %v", values)
			for _, m := range result.Messages {
				g.Expect(m.Severity).To(BeNumerically("<", support.WarningSev), "helm lint with %v: %s", values, m)
			}
		})
	}

	defaults := helmRender(t, nil)
	withOptional := helmRender(t, withComponents)

	t.Run("the objects of config/default, in the release namespace", func(t *testing.T) {
		for _, c := range []struct {
			objs       []*unstructured.Unstructured
			components bool
		}{{defaults, false}, {withOptional, true}} {
			g := NewWithT(t)
			g.Expect(refsOf(c.objs)).To(ConsistOf(configRefs(t, releaseNamespace, c.components)),
				"the chart (components=%v) must install what config/ does", c.components)
			g.Expect(refsOf(c.objs)).To(ContainElements(requiredRefs(releaseNamespace, c.components)))
			checkNamespaces(t, c.objs, releaseNamespace)
			checkOperator(t, c.objs, releaseNamespace)

			// The same CRD, RBAC rules and bindings, and admission policies
			// (validations, match conditions, constraints, bindings) as
			// config/, once the namespace is the release namespace.
			compared := 0
			for _, w := range configObjects(t, releaseNamespace, c.components) {
				got := find(t, c.objs, refOf(w))
				g.Expect(withoutMetadata(got)).To(Equal(withoutMetadata(w)), "%s differs from config/ (components=%v)", refOf(w), c.components)
				compared++
			}
			g.Expect(compared).To(BeNumerically(">=", 16), "fewer objects than the CRD, the RBAC and the policies")
		}
	})

	t.Run("the operator's username is the release namespace's", func(t *testing.T) {
		g := NewWithT(t)
		manifest, err := helmTemplate(t, withComponents)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(manifest).NotTo(ContainSubstring(defaultNamespace))
		for _, name := range []string{"aws-auth-guardian-protect-aws-auth", "aws-auth-guardian-operator-creates"} {
			spec := find(t, defaults, ref{"ValidatingAdmissionPolicy", "", name}).Object["spec"]
			g.Expect(spec).To(HaveKeyWithValue("matchConditions", ContainElement(HaveKeyWithValue("expression",
				ContainSubstring("'"+operatorUsername(releaseNamespace)+"'")))), name)
		}
	})

	t.Run("helm uninstall keeps the CRD", func(t *testing.T) {
		crd := find(t, defaults, ref{"CustomResourceDefinition", "", crdName})
		NewWithT(t).Expect(crd.GetAnnotations()).To(HaveKeyWithValue("helm.sh/resource-policy", "keep"))
	})

	t.Run("values", func(t *testing.T) {
		g := NewWithT(t)
		objs := helmRender(t, map[string]any{
			"image":               map[string]any{"repository": "registry.example/guardian", "tag": "v9"},
			"replicaCount":        1,
			"configmapMode":       "mutable",
			"maxRemovedShare":     0.25,
			"extraArgs":           []any{"--batch-delay=1s"},
			"privilegedGroups":    []any{"platform:admins", "eks-console-admins"},
			"privilegedUsernames": []any{"ops:admin", "breakglass-*"},
			"resources":           map[string]any{"requests": map[string]any{"cpu": "20m"}},
			"nodeSelector":        map[string]any{"kubernetes.io/os": "linux"},
			"tolerations":         []any{map[string]any{"key": "critical", "operator": "Exists"}},
			"affinity": map[string]any{"nodeAffinity": map[string]any{"requiredDuringSchedulingIgnoredDuringExecution": map[string]any{
				"nodeSelectorTerms": []any{map[string]any{"matchExpressions": []any{map[string]any{"key": "pool", "operator": "In", "values": []any{"system"}}}}},
			}}},
		})
		dep := typed[appsv1.Deployment](t, find(t, objs, ref{"Deployment", releaseNamespace, deploymentName}))
		g.Expect(dep.Spec.Replicas).To(HaveValue(BeEquivalentTo(1)))
		pod := dep.Spec.Template.Spec
		g.Expect(pod.Containers[0].Image).To(Equal("registry.example/guardian:v9"))
		g.Expect(pod.Containers[0].Args).To(ContainElements("--leader-elect", "--configmap-mode=mutable", "--max-removed-share=0.25", "--batch-delay=1s"))
		g.Expect(pod.Containers[0].Resources.Requests.Cpu().String()).To(Equal("20m"))
		g.Expect(pod.NodeSelector).To(Equal(map[string]string{"kubernetes.io/os": "linux"}))
		g.Expect(pod.Tolerations).To(ConsistOf(HaveField("Key", "critical")))
		g.Expect(pod.Affinity).To(HaveValue(HaveField("NodeAffinity", Not(BeNil()))))
		cm := typed[corev1.ConfigMap](t, find(t, objs, ref{"ConfigMap", releaseNamespace, "aws-auth-guardian-privileged-groups"}))
		g.Expect(cm.Data).To(HaveKeyWithValue("groups", "platform:admins, eks-console-admins"))
		g.Expect(cm.Data).To(HaveKeyWithValue("usernames", "ops:admin, breakglass-*"))
		// One replica: a budget of one would block every node drain.
		g.Expect(refsOf(objs)).NotTo(ContainElement(ref{"PodDisruptionBudget", releaseNamespace, deploymentName}))

		for _, bad := range []map[string]any{
			{"configmapMode": "readonly"},
			{"maxRemovedShare": 2},
			{"protectRbac": true},
			{"privilegedGroups": []any{"a, b"}},
			{"privilegedUsernames": []any{`["ops:admin"]`}},
		} {
			_, err := helmTemplate(t, bad)
			g.Expect(err).To(MatchError(ContainSubstring("values don't meet the specifications of the schema")), "%v", bad)
		}
	})

	t.Run("access entries", func(t *testing.T) {
		g := NewWithT(t)
		manager := func(objs []*unstructured.Unstructured) (corev1.Container, *corev1.ServiceAccount) {
			dep := typed[appsv1.Deployment](t, find(t, objs, ref{"Deployment", releaseNamespace, deploymentName}))
			sa := typed[corev1.ServiceAccount](t, find(t, objs, ref{"ServiceAccount", releaseNamespace, serviceAccountName}))
			return dep.Spec.Template.Spec.Containers[0], sa
		}
		awsOf := func(c corev1.Container) []string {
			var found []string
			for _, a := range c.Args {
				if strings.HasPrefix(a, "--eks-") || strings.HasPrefix(a, "--access-entry-") {
					found = append(found, a)
				}
			}
			for _, e := range c.Env {
				if strings.HasPrefix(e.Name, "AWS_") {
					found = append(found, e.Name+"="+e.Value)
				}
			}
			return found
		}

		// Off by default, and while the cluster name is empty: no flag and
		// no AWS variable, even with a region given.
		for _, values := range []map[string]any{nil, {"eks": map[string]any{"region": "eu-west-1", "accessEntryResync": "30s"}}} {
			c, sa := manager(helmRender(t, values))
			g.Expect(awsOf(c)).To(BeEmpty(), "with %v", values)
			g.Expect(sa.Annotations).NotTo(HaveKey("eks.amazonaws.com/role-arn"))
		}

		roleARN := "arn:aws:iam::111122223333:role/aws-auth-guardian"
		c, sa := manager(helmRender(t, map[string]any{
			"eks":            map[string]any{"clusterName": "prod", "region": "eu-west-1", "accessEntryResync": "30s"},
			"serviceAccount": map[string]any{"annotations": map[string]any{"eks.amazonaws.com/role-arn": roleARN}},
		}))
		g.Expect(awsOf(c)).To(ConsistOf("--eks-cluster-name=prod", "--access-entry-resync=30s", "--access-entry-full-resync=10m", "AWS_REGION=eu-west-1"))
		g.Expect(sa.Annotations).To(HaveKeyWithValue("eks.amazonaws.com/role-arn", roleARN))
		// Without a region, none is set: the SDK's chain must find it.
		c, _ = manager(helmRender(t, map[string]any{"eks": map[string]any{"clusterName": "prod"}}))
		g.Expect(awsOf(c)).To(ConsistOf("--eks-cluster-name=prod", "--access-entry-resync=1m", "--access-entry-full-resync=10m"))

		for _, bad := range []map[string]any{
			{"eks": map[string]any{"clusterName": "prod cluster"}},
			{"eks": map[string]any{"clusterName": "prod", "region": "Frankfurt"}},
			{"eks": map[string]any{"clusterName": "prod", "accessEntryResync": "soon"}},
			{"eks": map[string]any{"cluster": "prod"}},
			{"serviceAccount": map[string]any{"annotations": map[string]any{"eks.amazonaws.com/role-arn": 7}}},
		} {
			_, err := helmTemplate(t, bad)
			g.Expect(err).To(MatchError(ContainSubstring("values don't meet the specifications of the schema")), "%v", bad)
		}
	})

	t.Run("applies", func(t *testing.T) {
		ctx := context.Background()
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
			Name:   releaseNamespace,
			Labels: map[string]string{"pod-security.kubernetes.io/enforce": "restricted"},
		}}
		NewWithT(t).Expect(client.IgnoreAlreadyExists(k.Create(ctx, ns))).To(Succeed())
		apply(t, "test-helm", defaults)
		expectPoliciesEnforced(t, releaseNamespace, false)
		apply(t, "test-helm", withOptional)
		expectPoliciesEnforced(t, releaseNamespace, true)
	})
}
