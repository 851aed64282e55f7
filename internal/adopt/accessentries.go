package adopt

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/accessentry"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/managed"
)

// The aws-auth form of each node entry type: the username and groups a
// node role has in aws-auth, which Translate turns back into that type.
// HYBRID_LINUX shares FARGATE_LINUX's form and is told apart by
// spec.accessEntryType; the marker groups tell Windows and Fargate apart.
var nodeMappings = map[iamv1alpha1.AccessEntryType]struct {
	username string
	groups   []string
	asked    iamv1alpha1.AccessEntryType
}{
	iamv1alpha1.AccessEntryEC2Linux:     {"system:node:{{EC2PrivateDNSName}}", []string{"system:bootstrappers", "system:nodes"}, ""},
	iamv1alpha1.AccessEntryEC2Windows:   {"system:node:{{EC2PrivateDNSName}}", []string{"eks:kube-proxy-windows", "system:bootstrappers", "system:nodes"}, ""},
	iamv1alpha1.AccessEntryFargateLinux: {"system:node:{{SessionName}}", []string{"system:bootstrappers", "system:node-proxier", "system:nodes"}, ""},
	iamv1alpha1.AccessEntryHybridLinux:  {"system:node:{{SessionName}}", []string{"system:bootstrappers", "system:nodes"}, iamv1alpha1.AccessEntryHybridLinux},
}

// FromAccessEntries turns a cluster's access entries into the mappings
// that reproduce them, so that a cluster in API mode, whose access lives
// in its entries alone, can be taken over without a change: the operator
// adopts each entry as equal to its mapping's translation.
//
// Each mapping is checked by translating it back: one whose translation is
// not the entry (a username or group a mapping cannot hold, a type this
// version does not know) is not written but listed in Unrepresentable, so
// that nothing is imported as something else. An entry the operator made
// (tagged accessentry.MappingTag) gets the name its tag gives, so that a
// lost mapping comes back as its entry's owner rather than as a conflict.
// Mappings are sorted by name; principals are matched without case.
func FromAccessEntries(entries []accessentry.Observed) Adoption {
	var a Adoption
	byName := map[string][]iamv1alpha1.IAMIdentityMapping{}
	for _, o := range entries {
		m, err := mappingForEntry(o)
		if err != nil {
			a.Unrepresentable = append(a.Unrepresentable, sentence(err.Error()))
			continue
		}
		byName[m.Name] = append(byName[m.Name], m)
	}
	for _, name := range slices.Sorted(maps.Keys(byName)) {
		same := byName[name]
		if len(same) == 1 {
			a.Mappings = append(a.Mappings, same[0])
			continue
		}
		arns := make([]string, len(same))
		for i, m := range same {
			arns[i] = m.Spec.ARN
		}
		a.Unrepresentable = append(a.Unrepresentable, fmt.Sprintf("the access entries of %s would all be imported under the name %s (their tag %s says so, or their names collide), so none is; create their mappings under names of your choosing.", strings.Join(arns, " and "), name, accessentry.MappingTag))
	}
	return a
}

// mappingForEntry is the mapping whose translation is o's entry.
func mappingForEntry(o accessentry.Observed) (iamv1alpha1.IAMIdentityMapping, error) {
	e := o.Entry
	// The ARN as EKS holds it, a role's path included: Translate uses a
	// role with its path as written, and EKS matches that ARN.
	spec := iamv1alpha1.IAMIdentityMappingSpec{ARN: e.PrincipalARN}
	if node, ok := nodeMappings[e.Type]; ok {
		spec.Username = iamv1alpha1.IdentityName(node.username)
		spec.Groups = identityNames(node.groups)
		spec.AccessEntryType = node.asked
	} else if e.Type != iamv1alpha1.AccessEntryStandard {
		// A type added since (EKS Auto Mode's EC2, say).
		return iamv1alpha1.IAMIdentityMapping{}, fmt.Errorf("the access entry of %s has type %s, which no IAMIdentityMapping makes: %s", e.PrincipalARN, e.Type, accessentry.RuleType)
	} else {
		spec.Username = iamv1alpha1.IdentityName(e.Username)
		spec.Groups = identityNames(e.KubernetesGroups)
		// arn:<partition>:iam::...; a malformed ARN fails Translate below.
		_, rest, _ := strings.Cut(e.PrincipalARN, ":")
		partition, _, _ := strings.Cut(rest, ":")
		for _, p := range e.Policies {
			if accessentry.IsClusterAdmin(p) {
				// system:masters is what grants the cluster admin policy
				// on the whole cluster in both targets: aws-auth, which the
				// operator also writes, has no access policies.
				spec.Groups = append(spec.Groups, "system:masters")
				continue
			}
			spec.AccessPolicies = append(spec.AccessPolicies, iamv1alpha1.AccessPolicy{Policy: policyName(p.ARN, partition), Namespaces: namespaceNames(p.Namespaces)})
		}
	}
	m := iamv1alpha1.IAMIdentityMapping{
		TypeMeta:   metav1.TypeMeta{APIVersion: iamv1alpha1.GroupVersion.String(), Kind: "IAMIdentityMapping"},
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{AdoptedLabel: "true"}},
		Spec:       spec,
	}
	// Translate checks the spec as the operator will: a mapping that does
	// not translate back to the entry would change it.
	t, err := accessentry.Translate(accessentry.InputFrom(&m))
	switch {
	case err != nil:
		return m, fmt.Errorf("the access entry of %s (type %s) cannot become an IAMIdentityMapping: %w", e.PrincipalARN, e.Type, err)
	case !accessentry.Equal(t.Entry, e):
		return m, fmt.Errorf("the access entry of %s (type %s) has no IAMIdentityMapping that reproduces it: the closest one would make it %s", e.PrincipalARN, e.Type, describeEntry(t.Entry))
	}
	if name := o.Mapping(); name != "" {
		if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
			// The operator deletes an entry whose mapping is gone: under
			// any other name the import would have it deleted and made anew.
			return m, fmt.Errorf("the access entry of %s is tagged %s=%q, which is no object name (%s); remove the tag, then import it", e.PrincipalARN, accessentry.MappingTag, name, strings.Join(errs, "; "))
		}
		m.Name = name
		return m, nil
	}
	canonical, err := managed.MappingInput(&m).Entry()
	if err != nil {
		return m, err // Translate has checked it; kept for safety.
	}
	m.Name = Name(canonical)
	return m, nil
}

// policyName is the name a spec may give the policy, or its ARN when it is
// not one of the names this version knows in the principal's partition.
func policyName(arn, partition string) string {
	name := strings.TrimPrefix(arn, "arn:"+partition+":eks::aws:cluster-access-policy/")
	if name != arn && slices.Contains(accessentry.PolicyNames, name) {
		return name
	}
	return arn
}

func identityNames(in []string) []iamv1alpha1.IdentityName {
	out := make([]iamv1alpha1.IdentityName, len(in))
	for i, s := range in {
		out[i] = iamv1alpha1.IdentityName(s)
	}
	return out
}

func namespaceNames(in []string) []iamv1alpha1.AccessPolicyNamespace {
	var out []iamv1alpha1.AccessPolicyNamespace
	for _, s := range in {
		out = append(out, iamv1alpha1.AccessPolicyNamespace(s))
	}
	return out
}

func describeEntry(e accessentry.Entry) string {
	return fmt.Sprintf("type %s, username %q, groups %v, %d policies", e.Type, e.Username, e.KubernetesGroups, len(e.Policies))
}
