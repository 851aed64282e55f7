package controllers

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Every policy config/policy ships is one the operator checks, with its
// binding; the parameter ConfigMap and kustomization.yaml are not policies.
func TestShippedPoliciesAreTheCheckedOnes(t *testing.T) {
	t.Parallel()
	shipped, err := ParseShippedPolicies(os.DirFS("../config/policy"), DefaultNamespace)
	if err != nil {
		t.Fatal(err)
	}
	if len(shipped) < 4 {
		t.Fatalf("parsed %d policies from config/policy, want at least the 4 it had when this test was written", len(shipped))
	}
	for name, s := range shipped {
		if !slices.Contains(ProtectionPolicies, name) {
			t.Errorf("config/policy ships %s, which ProtectionPolicies does not list", name)
		}
		if s.Binding.Spec.PolicyName != name {
			t.Errorf("the binding %s points at %q", name, s.Binding.Spec.PolicyName)
		}
	}
}

// Installed in another namespace (a Helm release), the policies name that
// namespace, and so must the copy they are compared with.
func TestShippedPoliciesFollowTheNamespace(t *testing.T) {
	t.Parallel()
	shipped, err := ParseShippedPolicies(os.DirFS("../config/policy"), "team-guardian")
	if err != nil {
		t.Fatal(err)
	}
	spec, err := json.Marshal(shipped["aws-auth-guardian-protect-aws-auth"].Policy.Spec)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(spec), "system:serviceaccount:team-guardian:aws-auth-guardian-controller-manager") || strings.Contains(string(spec), DefaultNamespace) {
		t.Errorf("the policy does not name the operator of team-guardian alone: %s", spec)
	}
	if ref := shipped["aws-auth-guardian-prevent-escalation"].Binding.Spec.ParamRef; ref == nil || ref.Namespace != "team-guardian" {
		t.Errorf("the parameter is not looked up in team-guardian: %+v", ref)
	}
}

func TestParseShippedPoliciesNeedsBindings(t *testing.T) {
	t.Parallel()
	fsys := fstest.MapFS{
		"kustomization.yaml": {Data: []byte("resources: [a.yaml]\n")},
		"a.yaml": {Data: []byte(`apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: a}
spec: {validations: [{expression: "false"}]}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: param}
`)},
	}
	_, err := ParseShippedPolicies(fsys, DefaultNamespace)
	if err == nil || !strings.Contains(err.Error(), "admission policy a is shipped without its binding") {
		t.Fatalf("got %v", err)
	}
}

func TestBindingProblem(t *testing.T) {
	t.Parallel()
	deny := admissionregistrationv1.Deny
	denyParam := admissionregistrationv1.DenyAction
	shipped := admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
		PolicyName:        "p",
		ValidationActions: []admissionregistrationv1.ValidationAction{deny},
		ParamRef:          &admissionregistrationv1.ParamRef{Name: "groups", Namespace: "ns", ParameterNotFoundAction: &denyParam},
	}
	tests := []struct {
		name string
		edit func(*admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec)
		want string
	}{
		{"as shipped", func(*admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec) {}, ""},
		{"deny and audit", func(s *admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec) {
			s.ValidationActions = append(s.ValidationActions, admissionregistrationv1.Audit)
		}, ""},
		{"warn only", func(s *admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec) {
			s.ValidationActions = []admissionregistrationv1.ValidationAction{admissionregistrationv1.Warn}
		}, "the binding does not Deny: its validationActions are [Warn]"},
		{"other policy", func(s *admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec) { s.PolicyName = "q" },
			`the binding points at policy "q", not "p"`},
		{"other param", func(s *admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec) { s.ParamRef.Name = "empty" },
			"the binding's paramRef differs from the shipped one in name"},
		{"param allowed to be missing", func(s *admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec) {
			allow := admissionregistrationv1.AllowAction
			s.ParamRef.ParameterNotFoundAction = &allow
		}, "the binding's paramRef differs from the shipped one in parameterNotFoundAction"},
		{"no param", func(s *admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec) { s.ParamRef = nil },
			"the binding's paramRef differs from the shipped one in name, namespace, parameterNotFoundAction"},
		{"empty matchResources narrow nothing", func(s *admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec) {
			s.MatchResources = &admissionregistrationv1.MatchResources{}
		}, ""},
		{"a selector narrows", func(s *admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec) {
			s.MatchResources = &admissionregistrationv1.MatchResources{ObjectSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"never": "x"}}}
		}, "the binding's matchResources differ from the shipped one in objectSelector"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			live := *shipped.DeepCopy()
			tt.edit(&live)
			if got := bindingProblem(shipped, live); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
