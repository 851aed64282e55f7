package controllers

import (
	"context"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/go-logr/logr/funcr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
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

// installed is a reader holding the shipped policies and bindings as the
// API server stores them (defaulted), with edit applied to each policy.
func installed(t *testing.T, edit func(*admissionregistrationv1.ValidatingAdmissionPolicy)) (client.Reader, map[string]ShippedPolicy) {
	t.Helper()
	shipped, err := ParseShippedPolicies(os.DirFS("../config/policy"), DefaultNamespace)
	if err != nil {
		t.Fatal(err)
	}
	builder := fake.NewClientBuilder().WithScheme(NewScheme())
	for _, s := range shipped {
		policy := s.Policy.DeepCopy()
		DefaultPolicySpec(&policy.Spec)
		edit(policy)
		builder = builder.WithObjects(policy, s.Binding.DeepCopy())
	}
	return builder.Build(), shipped
}

// kustomize's YAML writer re-folds a folded (>-) expression whose lines
// are indented further than its first, and adds a blank line: kubectl
// apply -k config/policy, the way the README installs the policies,
// stores that. It is the same CEL and must not read as disarmed.
func TestPoliciesAppliedThroughKustomizeAreInForce(t *testing.T) {
	t.Parallel()
	reader, shipped := installed(t, func(p *admissionregistrationv1.ValidatingAdmissionPolicy) {
		for i := range p.Spec.Variables {
			v := &p.Spec.Variables[i]
			v.Expression = strings.Replace(v.Expression, "\n", "\n\n", 1)
		}
		for i := range p.Spec.Validations {
			v := &p.Spec.Validations[i]
			v.MessageExpression = strings.ReplaceAll(v.MessageExpression, "\n", " \n")
		}
	})
	for _, name := range ProtectionPolicies {
		problem, err := policyProblem(context.Background(), reader, name, shipped)
		if err != nil {
			t.Fatal(err)
		}
		if problem != "" {
			t.Errorf("%s: %s", name, problem)
		}
	}
}

// Only blank lines and trailing blanks are ignored: any other change of an
// expression is a change, and so is a blank line inside a triple-quoted
// string.
func TestChangedExpressionsAreNotInForce(t *testing.T) {
	t.Parallel()
	const (
		protect  = "aws-auth-guardian-protect-aws-auth"
		escalate = "aws-auth-guardian-prevent-escalation"
	)
	for _, tt := range []struct {
		what, policy, want string
		// edit changes the live policy; shipped, when set, the shipped one.
		edit, shipped func(*admissionregistrationv1.ValidatingAdmissionPolicySpec)
	}{
		{what: "validation always true", policy: protect, want: "validations",
			edit: func(s *admissionregistrationv1.ValidatingAdmissionPolicySpec) { s.Validations[0].Expression = "true" }},
		{what: "a line of a multi-line expression dropped", policy: escalate, want: "variables",
			edit: func(s *admissionregistrationv1.ValidatingAdmissionPolicySpec) {
				for i, v := range s.Variables {
					if v.Name == "why" {
						lines := strings.Split(v.Expression, "\n")
						s.Variables[i].Expression = strings.Join(append(lines[:1], lines[2:]...), "\n")
					}
				}
			}},
		{what: "blank line in a triple-quoted string", policy: protect, want: "validations",
			edit: func(s *admissionregistrationv1.ValidatingAdmissionPolicySpec) {
				s.Validations[0].Expression += " || '''\n\n''' == ''"
			},
			shipped: func(s *admissionregistrationv1.ValidatingAdmissionPolicySpec) {
				s.Validations[0].Expression += " || '''\n''' == ''"
			}},
	} {
		t.Run(tt.what, func(t *testing.T) {
			t.Parallel()
			reader, shipped := installed(t, func(p *admissionregistrationv1.ValidatingAdmissionPolicy) {
				if p.Name == tt.policy {
					tt.edit(&p.Spec)
				}
			})
			if tt.shipped != nil {
				s := shipped[tt.policy]
				s.Policy = s.Policy.DeepCopy()
				tt.shipped(&s.Policy.Spec)
				shipped[tt.policy] = s
			}
			problem, err := policyProblem(context.Background(), reader, tt.policy, shipped)
			if err != nil {
				t.Fatal(err)
			}
			if want := "the ValidatingAdmissionPolicy's spec differs from the shipped one in " + tt.want; problem != want {
				t.Errorf("got %q, want %q", problem, want)
			}
		})
	}
}

// A missing policy is a warning in words at Info level, not an error (which
// zap prints with a Go stack trace in make run's development mode), and
// it names the command that installs the policies.
func TestMissingPoliciesAreAWarningNamingTheInstallCommand(t *testing.T) {
	t.Parallel()
	shipped, err := ParseShippedPolicies(os.DirFS("../config/policy"), DefaultNamespace)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	log := funcr.New(func(_, args string) { lines = append(lines, args) }, funcr.Options{})
	report := &ProtectionReport{Reader: fake.NewClientBuilder().WithScheme(NewScheme()).Build(), Shipped: shipped}
	report.check(context.Background(), log, map[string]string{})
	if len(lines) != len(ProtectionPolicies) {
		t.Fatalf("got %d lines, want one per policy:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	for i, line := range lines {
		for _, want := range []string{
			`"level"=0`,
			`"msg"="Warning: `,
			"kubectl apply -k config/policy",
			`"policy"="` + ProtectionPolicies[i] + `"`,
			`"problem"="the ValidatingAdmissionPolicy is missing"`,
		} {
			if !strings.Contains(line, want) {
				t.Errorf("line %q lacks %s", line, want)
			}
		}
		if strings.Contains(line, `"error"=`) {
			t.Errorf("logged as an error: %s", line)
		}
	}
}
