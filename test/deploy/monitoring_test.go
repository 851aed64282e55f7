package deploy

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
)

const (
	serviceMonitorName = "aws-auth-guardian-controller-manager-metrics"
	prometheusRuleName = "aws-auth-guardian"
	dashboardName      = "aws-auth-guardian-dashboard"
	dashboardKey       = "aws-auth-guardian.json"
)

// withMonitoring are the values that render the ServiceMonitor, the rules
// and the dashboard.
var withMonitoring = map[string]any{
	"serviceMonitor": map[string]any{"enabled": true, "labels": map[string]any{"release": "kube-prometheus-stack"}},
	"prometheusRule": map[string]any{"enabled": true, "labels": map[string]any{"release": "kube-prometheus-stack"}},
	"dashboard":      map[string]any{"enabled": true},
}

// checkMonitoring checks the ServiceMonitor, the rules and the dashboard of
// an install into ns: decoded strictly into the Prometheus Operator's own
// types (an unknown field fails), the ServiceMonitor scraping the metrics
// Service's https port with a bearer token, and the dashboard's ConfigMap
// labelled for the Grafana sidecar, holding config/'s JSON.
func checkMonitoring(t *testing.T, objs []*unstructured.Unstructured, ns string) {
	t.Helper()
	g := NewWithT(t)
	sm := typed[monitoringv1.ServiceMonitor](t, find(t, objs, ref{"ServiceMonitor", ns, serviceMonitorName}))
	svc := typed[corev1.Service](t, find(t, objs, ref{"Service", ns, metricsServiceName}))
	selector, err := labels.ValidatedSelectorFromSet(sm.Spec.Selector.MatchLabels)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(sm.Spec.Selector.MatchLabels).NotTo(BeEmpty())
	g.Expect(selector.Matches(labels.Set(svc.Labels))).To(BeTrue(), "the ServiceMonitor %v does not select the metrics Service %v", sm.Spec.Selector.MatchLabels, svc.Labels)
	g.Expect(svc.Labels).To(HaveKeyWithValue(sm.Spec.JobLabel, "aws-auth-guardian"), "the alert AWSAuthGuardianDown names job aws-auth-guardian")
	g.Expect(sm.Spec.Endpoints).To(HaveLen(1))
	endpoint := sm.Spec.Endpoints[0]
	g.Expect(endpoint.Port).To(Equal(svc.Spec.Ports[0].Name))
	g.Expect(endpoint.Scheme).To(HaveValue(BeEquivalentTo("https")))
	g.Expect(endpoint.BearerTokenFile).To(Equal("/var/run/secrets/kubernetes.io/serviceaccount/token")) //nolint:staticcheck // as kubebuilder ships it: Prometheus's own token
	g.Expect(endpoint.TLSConfig).NotTo(BeNil())

	rule := typed[monitoringv1.PrometheusRule](t, find(t, objs, ref{"PrometheusRule", ns, prometheusRuleName}))
	g.Expect(rule.Spec.Groups).NotTo(BeEmpty())

	cm := typed[corev1.ConfigMap](t, find(t, objs, ref{"ConfigMap", ns, dashboardName}))
	g.Expect(cm.Labels).To(HaveKeyWithValue("grafana_dashboard", "1"))
	want, err := os.ReadFile(filepath.Join(repoRoot, "config", "components", "grafana-dashboard", dashboardKey))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cm.Data).To(HaveKeyWithValue(dashboardKey, string(want)))
	g.Expect(json.Valid([]byte(cm.Data[dashboardKey]))).To(BeTrue())
}

// monitoringKustomization is what the README tells a person to write:
// config/default plus the two components.
func monitoringKustomization(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	return userKustomization(t, []string{"prometheus", "grafana-dashboard"}, "")
}

func TestMonitoringComponents(t *testing.T) {
	objs := monitoringKustomization(t)
	checkMonitoring(t, objs, defaultNamespace)
	want := append(refsOf(kustomizeBuild(t, filepath.Join(repoRoot, "config", "default"))),
		ref{"ServiceMonitor", defaultNamespace, serviceMonitorName},
		ref{"PrometheusRule", defaultNamespace, prometheusRuleName},
		ref{"ConfigMap", defaultNamespace, dashboardName})
	NewWithT(t).Expect(refsOf(objs)).To(ConsistOf(want))
}

func TestHelmMonitoring(t *testing.T) {
	t.Run("off by default", func(t *testing.T) {
		refs := refsOf(helmRender(t, nil))
		for _, kind := range []string{"ServiceMonitor", "PrometheusRule"} {
			NewWithT(t).Expect(refs).NotTo(ContainElement(HaveField("Kind", kind)))
		}
		NewWithT(t).Expect(refs).NotTo(ContainElement(HaveField("Name", dashboardName)))
	})

	t.Run("the objects of the components, in the release namespace", func(t *testing.T) {
		g := NewWithT(t)
		objs := helmRender(t, withMonitoring)
		checkMonitoring(t, objs, releaseNamespace)
		for _, name := range []ref{{"ServiceMonitor", releaseNamespace, serviceMonitorName}, {"PrometheusRule", releaseNamespace, prometheusRuleName}} {
			g.Expect(find(t, objs, name).GetLabels()).To(HaveKeyWithValue("release", "kube-prometheus-stack"), "%v", name)
		}
		config := monitoringKustomization(t)
		for _, r := range []ref{{"ServiceMonitor", "", serviceMonitorName}, {"PrometheusRule", "", prometheusRuleName}, {"ConfigMap", "", dashboardName}} {
			r.Namespace = defaultNamespace
			w := find(t, config, r)
			r.Namespace = releaseNamespace
			g.Expect(withoutMetadata(find(t, objs, r))).To(Equal(withoutMetadata(w)), "%v differs from config/components", r)
		}
	})

	t.Run("the dashboard where the Grafana sidecar looks", func(t *testing.T) {
		objs := helmRender(t, map[string]any{"dashboard": map[string]any{"enabled": true, "namespace": "monitoring"}})
		find(t, objs, ref{"ConfigMap", "monitoring", dashboardName})
	})

	t.Run("metrics.secure=false: plain HTTP, and no ServiceMonitor", func(t *testing.T) {
		g := NewWithT(t)
		objs := helmRender(t, map[string]any{"metrics": map[string]any{"secure": false}})
		dep := typed[appsv1.Deployment](t, find(t, objs, ref{"Deployment", releaseNamespace, deploymentName}))
		c := dep.Spec.Template.Spec.Containers[0]
		g.Expect(c.Args).To(ContainElements("--metrics-bind-address=:8080", "--metrics-secure=false"))
		g.Expect(c.Ports).To(ContainElement(And(HaveField("Name", "http"), HaveField("ContainerPort", BeEquivalentTo(8080)))))
		svc := typed[corev1.Service](t, find(t, objs, ref{"Service", releaseNamespace, metricsServiceName}))
		g.Expect(svc.Spec.Ports).To(ConsistOf(And(HaveField("Name", "http"), HaveField("Port", BeEquivalentTo(8080)))))

		_, err := helmTemplate(t, map[string]any{"metrics": map[string]any{"secure": false}, "serviceMonitor": map[string]any{"enabled": true}})
		g.Expect(err).To(MatchError(ContainSubstring("serviceMonitor.enabled needs metrics.secure")))
		for _, bad := range []map[string]any{
			{"metrics": map[string]any{"secure": "no"}},
			{"serviceMonitor": map[string]any{"enable": true}},
			{"dashboard": map[string]any{"enabled": true, "namespace": "Monitoring"}},
		} {
			_, err := helmTemplate(t, bad)
			g.Expect(err).To(MatchError(ContainSubstring("values don't meet the specifications of the schema")), "%v", bad)
		}
	})
}
