package controllers

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/yaml"
)

// ProtectionPolicies are the admission policies of config/policy, each
// bound under its own name. Without them anyone with RBAC rights can still
// delete aws-auth; the operator would heal it, but only after the fact.
var ProtectionPolicies = []string{
	"aws-auth-guardian-protect-aws-auth",
	"aws-auth-guardian-protect-crd",
	"aws-auth-guardian-operator-creates",
	"aws-auth-guardian-prevent-escalation",
	"aws-auth-guardian-protect-operator-configmaps",
}

var policyInstalled = prometheus.NewGaugeVec(prometheus.GaugeOpts{
	Name: "aws_auth_guardian_protection_policy_installed",
	Help: "1 when the admission policy is installed as shipped and its binding of the same name denies, 0 when not; checked periodically.",
}, []string{"policy"})

func init() {
	metrics.Registry.MustRegister(policyInstalled)
}

// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=validatingadmissionpolicies;validatingadmissionpolicybindings,resourceNames=aws-auth-guardian-protect-aws-auth;aws-auth-guardian-protect-crd;aws-auth-guardian-operator-creates;aws-auth-guardian-prevent-escalation;aws-auth-guardian-protect-operator-configmaps,verbs=get

// ShippedPolicy is an admission policy of config/policy and its binding of
// the same name, as the release ships them.
type ShippedPolicy struct {
	Policy  *admissionregistrationv1.ValidatingAdmissionPolicy
	Binding *admissionregistrationv1.ValidatingAdmissionPolicyBinding
}

// DefaultNamespace is the operator's namespace as config/policy names it
// (its service account, its backup, the parameter). An install elsewhere,
// such as a Helm release, has it replaced by its own namespace.
const DefaultNamespace = "aws-auth-guardian-system"

// ParseShippedPolicies reads the policies and bindings of every *.yaml in
// fsys but kustomization.yaml, keyed by name, with DefaultNamespace
// replaced by namespace as an install there does. Other objects (the
// parameter ConfigMap of prevent-escalation) are skipped.
func ParseShippedPolicies(fsys fs.FS, namespace string) (map[string]ShippedPolicy, error) {
	files, err := fs.Glob(fsys, "*.yaml")
	if err != nil {
		return nil, err
	}
	shipped := map[string]ShippedPolicy{}
	for _, file := range files {
		if path.Base(file) == "kustomization.yaml" {
			continue
		}
		data, err := fs.ReadFile(fsys, file)
		if err != nil {
			return nil, err
		}
		data = bytes.ReplaceAll(data, []byte(DefaultNamespace), []byte(namespace))
		reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
		for {
			doc, err := reader.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", file, err)
			}
			var meta metav1.TypeMeta
			if err := yaml.Unmarshal(doc, &meta); err != nil {
				return nil, fmt.Errorf("%s: %w", file, err)
			}
			if meta.APIVersion != admissionregistrationv1.SchemeGroupVersion.String() {
				continue
			}
			switch meta.Kind {
			case "ValidatingAdmissionPolicy":
				p := &admissionregistrationv1.ValidatingAdmissionPolicy{}
				if err := yaml.UnmarshalStrict(doc, p); err != nil {
					return nil, fmt.Errorf("%s: %w", file, err)
				}
				s := shipped[p.Name]
				s.Policy = p
				shipped[p.Name] = s
			case "ValidatingAdmissionPolicyBinding":
				b := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{}
				if err := yaml.UnmarshalStrict(doc, b); err != nil {
					return nil, fmt.Errorf("%s: %w", file, err)
				}
				s := shipped[b.Name]
				s.Binding = b
				shipped[b.Name] = s
			}
		}
	}
	for name, s := range shipped {
		if s.Policy == nil || s.Binding == nil {
			return nil, fmt.Errorf("admission policy %s is shipped without its binding of the same name, or the binding without its policy", name)
		}
	}
	return shipped, nil
}

// ProtectionReport checks, at start and every Interval, that each
// protection policy is installed as shipped and bound with Deny, so that a
// missing or disarmed layer shows in the log and in
// aws_auth_guardian_protection_policy_installed. A cluster-admin can disarm
// a policy without deleting it (a binding set to Warn, a validation set to
// true): existence alone says nothing. Every replica reports, leader or
// not: a missing layer is worth seeing wherever one looks.
type ProtectionReport struct {
	Reader client.Reader
	// Shipped are the policies of config/policy, as built into the binary.
	Shipped map[string]ShippedPolicy
	// Interval between checks; 10s when zero.
	Interval time.Duration
	// Log receives one line each time a policy's state changes; the
	// "protection" logger when unset.
	Log logr.Logger
}

// NeedLeaderElection is false: the report reads, it never writes.
func (*ProtectionReport) NeedLeaderElection() bool { return false }

// Start checks until ctx ends.
func (p *ProtectionReport) Start(ctx context.Context) error {
	log := p.Log
	if log.GetSink() == nil {
		log = ctrl.Log.WithName("protection")
	}
	interval := p.Interval
	if interval <= 0 {
		interval = 10 * time.Second
	}
	// What was last logged per policy: a state is logged when it changes,
	// not at every check.
	last := map[string]string{}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		p.check(ctx, log, last)
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

func (p *ProtectionReport) check(ctx context.Context, log logr.Logger, last map[string]string) {
	for _, name := range ProtectionPolicies {
		problem, err := policyProblem(ctx, p.Reader, name, p.Shipped)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			// The state is unknown: the gauge keeps its value rather than
			// fire an alert for one failed read.
			state := "unreadable: " + err.Error()
			if last[name] != state {
				log.Info("Warning: cannot check the admission policy protecting aws-auth", "policy", name, "problem", err.Error())
				last[name] = state
			}
			continue
		}
		value := 1.0
		if problem != "" {
			value = 0
		}
		policyInstalled.WithLabelValues(name).Set(value)
		state := "problem: " + problem
		if last[name] == state {
			continue
		}
		last[name] = state
		if problem == "" {
			log.Info("Admission policy protecting aws-auth is installed as shipped and denies", "policy", name)
			continue
		}
		// A warning in words, at Info: logr has no warning level, and
		// Error would print a Go stack trace (zap's development mode,
		// make run's) for what is a cluster's state, not a bug.
		log.Info(warnNotInForce, "policy", name, "problem", problem)
	}
}

// warnNotInForce is logged when a policy is missing or disarmed. It names
// the command that installs config/policy as shipped: a person reading it
// should not have to look it up.
const warnNotInForce = "Warning: an admission policy protecting aws-auth is not in force: " +
	"anyone with RBAC rights can do what it forbids, and the operator can only heal aws-auth afterwards. " +
	"Install it as shipped: kubectl apply -k config/policy (in a Helm install, upgrade the release)"

// policyProblem says why the policy name is not in force as shipped, or ""
// when it is.
func policyProblem(ctx context.Context, reader client.Reader, name string, shipped map[string]ShippedPolicy) (string, error) {
	live := &admissionregistrationv1.ValidatingAdmissionPolicy{}
	switch err := reader.Get(ctx, client.ObjectKey{Name: name}, live); {
	case apierrors.IsNotFound(err):
		return "the ValidatingAdmissionPolicy is missing", nil
	case err != nil:
		return "", err
	}
	binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{}
	switch err := reader.Get(ctx, client.ObjectKey{Name: name}, binding); {
	case apierrors.IsNotFound(err):
		return "the ValidatingAdmissionPolicyBinding of the same name is missing", nil
	case err != nil:
		return "", err
	}
	s, ok := shipped[name]
	if !ok {
		return "this build ships no copy of the policy to compare it with", nil
	}
	want := s.Policy.Spec.DeepCopy()
	DefaultPolicySpec(want)
	got := live.Spec.DeepCopy()
	squeezeExpressions(want)
	squeezeExpressions(got)
	if fields := differingFields(want, got); len(fields) > 0 {
		return "the ValidatingAdmissionPolicy's spec differs from the shipped one in " + strings.Join(fields, ", "), nil
	}
	return bindingProblem(s.Binding.Spec, binding.Spec), nil
}

// squeezeExpressions drops the blank lines and trailing blanks of every
// CEL expression of spec. The same file applied through kustomize (kubectl
// apply -k config/policy, make deploy) reaches the API server with a blank
// line more in a folded (>-) expression whose lines are indented further
// than its first: kustomize's YAML writer re-folds it. To CEL a newline is
// only a separator, and no quoted string but a triple-quoted one spans
// lines, so such lines change nothing; an expression with a triple-quoted
// string is compared as it is.
func squeezeExpressions(spec *admissionregistrationv1.ValidatingAdmissionPolicySpec) {
	for i := range spec.MatchConditions {
		spec.MatchConditions[i].Expression = squeeze(spec.MatchConditions[i].Expression)
	}
	for i := range spec.Variables {
		spec.Variables[i].Expression = squeeze(spec.Variables[i].Expression)
	}
	for i := range spec.Validations {
		spec.Validations[i].Expression = squeeze(spec.Validations[i].Expression)
		spec.Validations[i].MessageExpression = squeeze(spec.Validations[i].MessageExpression)
	}
	for i := range spec.AuditAnnotations {
		spec.AuditAnnotations[i].ValueExpression = squeeze(spec.AuditAnnotations[i].ValueExpression)
	}
}

func squeeze(expression string) string {
	if strings.Contains(expression, "'''") || strings.Contains(expression, `"""`) {
		return expression
	}
	lines := strings.Split(expression, "\n")
	kept := lines[:0]
	for _, line := range lines {
		if line = strings.TrimRight(line, " \t\r"); line != "" {
			kept = append(kept, line)
		}
	}
	return strings.Join(kept, "\n")
}

func bindingProblem(shipped, live admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec) string {
	if live.PolicyName != shipped.PolicyName {
		return fmt.Sprintf("the binding points at policy %q, not %q", live.PolicyName, shipped.PolicyName)
	}
	if !slices.Contains(live.ValidationActions, admissionregistrationv1.Deny) {
		return fmt.Sprintf("the binding does not Deny: its validationActions are %v", live.ValidationActions)
	}
	if shipped.ParamRef != nil {
		if fields := differingFields(shipped.ParamRef, live.ParamRef); len(fields) > 0 {
			return "the binding's paramRef differs from the shipped one in " + strings.Join(fields, ", ")
		}
	}
	// A binding's matchResources narrow what the policy applies to: a
	// selector that matches nothing disarms it as surely as Warn does.
	// None and empty ones narrow nothing, so both sides are compared
	// defaulted.
	if fields := differingFields(defaultedMatch(shipped.MatchResources), defaultedMatch(live.MatchResources)); len(fields) > 0 {
		return "the binding's matchResources differ from the shipped one in " + strings.Join(fields, ", ")
	}
	return ""
}

// DefaultPolicySpec sets the fields the API server defaults when it stores
// a policy (k8s.io/kubernetes pkg/apis/admissionregistration/v1
// defaults.go), so that a shipped spec compares equal to its stored copy.
func DefaultPolicySpec(spec *admissionregistrationv1.ValidatingAdmissionPolicySpec) {
	if spec.FailurePolicy == nil {
		fail := admissionregistrationv1.Fail
		spec.FailurePolicy = &fail
	}
	if spec.MatchConstraints != nil {
		defaultMatchResources(spec.MatchConstraints)
	}
}

func defaultMatchResources(m *admissionregistrationv1.MatchResources) {
	if m.MatchPolicy == nil {
		equivalent := admissionregistrationv1.Equivalent
		m.MatchPolicy = &equivalent
	}
	if m.NamespaceSelector == nil {
		m.NamespaceSelector = &metav1.LabelSelector{}
	}
	if m.ObjectSelector == nil {
		m.ObjectSelector = &metav1.LabelSelector{}
	}
	for _, rules := range [][]admissionregistrationv1.NamedRuleWithOperations{m.ResourceRules, m.ExcludeResourceRules} {
		for i := range rules {
			if rules[i].Scope == nil {
				all := admissionregistrationv1.AllScopes
				rules[i].Scope = &all
			}
		}
	}
}

func defaultedMatch(m *admissionregistrationv1.MatchResources) *admissionregistrationv1.MatchResources {
	if m == nil {
		m = &admissionregistrationv1.MatchResources{}
	}
	m = m.DeepCopy()
	defaultMatchResources(m)
	return m
}

// differingFields names the top-level JSON fields in which want and live
// differ. Through JSON, an empty list and a missing one are the same, as
// they are to the API server.
func differingFields(want, live any) []string {
	a, b := jsonFields(want), jsonFields(live)
	var fields []string
	for k := range a {
		if !reflect.DeepEqual(a[k], b[k]) {
			fields = append(fields, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			fields = append(fields, k)
		}
	}
	sort.Strings(fields)
	return fields
}

func jsonFields(v any) map[string]any {
	fields := map[string]any{}
	data, err := json.Marshal(v)
	if err != nil {
		// Typed API structs always marshal; a failure is a bug here.
		panic(err)
	}
	// null (a nil pointer) leaves fields empty.
	_ = json.Unmarshal(data, &fields)
	return fields
}
