package accessentry

import (
	"slices"
	"strings"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
)

// Changes is what brings an access entry from what EKS holds to what a
// mapping asks for.
type Changes struct {
	// Recreate is set when the principal or the type differ, which EKS
	// cannot change in an entry: delete it, create the wanted one and
	// associate all its policies (Associate holds them).
	Recreate bool
	// Update is set when the username or the groups differ
	// (UpdateAccessEntry).
	Update bool
	// Associate are the policies to associate (AssociateAccessPolicy, which
	// also changes the scope of one associated already).
	Associate []Policy
	// Disassociate are the ARNs of the policies to disassociate.
	Disassociate []string
}

// None says whether the entry already is what is wanted.
func (c Changes) None() bool {
	return !c.Recreate && !c.Update && len(c.Associate) == 0 && len(c.Disassociate) == 0
}

// Diff compares the wanted entry with the one EKS holds. Groups, policies
// and namespaces compare as sets, since EKS returns them in no set order.
// Principal ARNs compare without case, as IAM compares role and user
// names. Of a node entry only the principal and the type are compared: EKS
// fills in its username and groups (system:nodes) and grants its
// permissions itself, so what it holds there is not a difference to undo.
func Diff(want, got Entry) Changes {
	if !strings.EqualFold(want.PrincipalARN, got.PrincipalARN) || want.Type != got.Type {
		return Changes{Recreate: true, Associate: slices.Clone(want.Policies)}
	}
	if want.Type != iamv1alpha1.AccessEntryStandard {
		return Changes{}
	}
	c := Changes{Update: want.Username != got.Username || !sameSet(want.KubernetesGroups, got.KubernetesGroups)}
	for _, w := range want.Policies {
		i := slices.IndexFunc(got.Policies, func(g Policy) bool { return g.ARN == w.ARN })
		if i < 0 || !sameSet(w.Namespaces, got.Policies[i].Namespaces) {
			c.Associate = append(c.Associate, w)
		}
	}
	for _, g := range got.Policies {
		if !slices.ContainsFunc(want.Policies, func(w Policy) bool { return w.ARN == g.ARN }) {
			c.Disassociate = append(c.Disassociate, g.ARN)
		}
	}
	return c
}

// Equal says whether got already is want (Diff finds nothing to do).
func Equal(want, got Entry) bool {
	return Diff(want, got).None()
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}
