package controllers

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// ProtectionPolicies are the admission policies of config/policy, each
// bound under its own name. Without them anyone with RBAC rights can still
// delete aws-auth; the operator would heal it, but only after the fact.
var ProtectionPolicies = []string{
	"aws-auth-guardian-protect-aws-auth",
	"aws-auth-guardian-protect-crd",
	"aws-auth-guardian-operator-creates",
	"aws-auth-guardian-prevent-escalation",
}

var policyInstalled = prometheus.NewGaugeVec(prometheus.GaugeOpts{
	Name: "aws_auth_guardian_protection_policy_installed",
	Help: "1 when the admission policy is installed and bound, 0 when not, as seen at start.",
}, []string{"policy"})

func init() {
	metrics.Registry.MustRegister(policyInstalled)
}

// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=validatingadmissionpolicies;validatingadmissionpolicybindings,resourceNames=aws-auth-guardian-protect-aws-auth;aws-auth-guardian-protect-crd;aws-auth-guardian-operator-creates;aws-auth-guardian-prevent-escalation,verbs=get

// ProtectionReport says, once at start, which protection policies are
// installed and bound, so that a missing layer shows in the log and in
// aws_auth_guardian_protection_policy_installed. Every replica reports,
// leader or not: a missing layer is worth seeing wherever one looks.
type ProtectionReport struct {
	Reader client.Reader
}

// NeedLeaderElection is false: the report reads, it never writes.
func (ProtectionReport) NeedLeaderElection() bool { return false }

// Start reports and returns.
func (p ProtectionReport) Start(ctx context.Context) error {
	return reportProtection(ctx, p.Reader)
}

func reportProtection(ctx context.Context, reader client.Reader) error {
	log := ctrl.Log.WithName("protection")
	var missing []string
	for _, name := range ProtectionPolicies {
		bound, err := policyBound(ctx, reader, name)
		if err != nil {
			return err
		}
		value := 1.0
		if !bound {
			value = 0
			missing = append(missing, name)
		}
		policyInstalled.WithLabelValues(name).Set(value)
	}
	if len(missing) > 0 {
		log.Error(nil, "Admission policies protecting aws-auth are missing: anyone with RBAC rights can delete or edit aws-auth, and the operator can only heal it afterwards; install config/policy", "missing", missing)
		return nil
	}
	log.Info("Admission policies protecting aws-auth are installed and bound", "policies", ProtectionPolicies)
	return nil
}

func policyBound(ctx context.Context, reader client.Reader, name string) (bool, error) {
	for _, obj := range []client.Object{&admissionregistrationv1.ValidatingAdmissionPolicy{}, &admissionregistrationv1.ValidatingAdmissionPolicyBinding{}} {
		err := reader.Get(ctx, client.ObjectKey{Name: name}, obj)
		switch {
		case apierrors.IsNotFound(err):
			return false, nil
		case err != nil:
			return false, err
		}
	}
	return true, nil
}
