package integration

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	dto "github.com/prometheus/client_model/go"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/managed"
)

// metricValue reads one series from the registry the operator exports;
// a series never written reads as 0.
func metricValue(g Gomega, name string, labels map[string]string) float64 {
	families, err := metrics.Registry.Gather()
	g.Expect(err).NotTo(HaveOccurred())
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if hasLabels(m, labels) {
				return m.GetGauge().GetValue() + m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	found := 0
	for _, l := range m.GetLabel() {
		if v, ok := want[l.GetName()]; ok && v == l.GetValue() {
			found++
		}
	}
	return found == len(want)
}

func TestMetricsSayWhatHappened(t *testing.T) {
	startWithMappings(t, managed.Immutable)
	g := NewWithT(t)
	ctx := context.Background()
	counter := func(name string, labels map[string]string) func(Gomega) float64 {
		return func(g Gomega) float64 { return metricValue(g, name, labels) }
	}

	g.Expect(metricValue(g, "aws_auth_guardian_aws_auth_present", nil)).To(Equal(1.0))
	g.Expect(metricValue(g, "aws_auth_guardian_rendered_data_bytes", nil)).To(Equal(float64(awsauth.DataSize(getAWSAuth(g).Data))))
	g.Eventually(counter("aws_auth_guardian_mappings", map[string]string{"section": "mapRoles", "ready": "True"})).
		WithTimeout(timeout).WithPolling(interval).Should(Equal(2.0))

	deleted := counter("aws_auth_guardian_recreations_total", map[string]string{"cause": "deleted"})
	before := deleted(g)
	g.Expect(k.Delete(ctx, getAWSAuth(g))).To(Succeed())
	g.Eventually(deleted).WithTimeout(timeout).WithPolling(interval).Should(Equal(before + 1))

	metadataDrift := counter("aws_auth_guardian_drift_restorations_total", map[string]string{"cause": "metadata"})
	before = metadataDrift(g)
	cm := getAWSAuth(g)
	delete(cm.Labels, iamv1alpha1.ManagedByLabel)
	g.Expect(k.Update(ctx, cm)).To(Succeed())
	g.Eventually(metadataDrift).WithTimeout(timeout).WithPolling(interval).Should(Equal(before + 1))

	replaces := counter("aws_auth_guardian_replaces_total", nil)
	before = replaces(g)
	m := &iamv1alpha1.IAMIdentityMapping{}
	g.Expect(k.Get(ctx, client.ObjectKey{Name: "jane"}, m)).To(Succeed())
	m.Spec.Username = "jane-doe"
	g.Expect(k.Update(ctx, m)).To(Succeed())
	g.Eventually(replaces).WithTimeout(timeout).WithPolling(interval).Should(BeNumerically(">=", before+1))
	g.Expect(metricValue(g, "aws_auth_guardian_last_replace_window_seconds", nil)).To(BeNumerically(">", 0))
	g.Expect(metricValue(g, "aws_auth_guardian_last_apply_timestamp_seconds", nil)).To(BeNumerically(">", 0))
}
