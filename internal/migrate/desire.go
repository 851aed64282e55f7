package migrate

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/accessentry"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/eksapi"
)

// Roles finds the ARN IAM holds for a role name, path included:
// *eksapi.Client.
type Roles interface {
	RoleARN(ctx context.Context, roleName string) (string, error)
}

// Desire translates a mapping into the access entry the operator makes of
// it (accessentry.Translate), asking roles (iam:GetRole) for the ARN of a
// role written without its path, as EKS matches the role by its full ARN.
// With roles nil the role is left as written. The access entry controller
// and `manager migrate` both translate with it, so that the report says
// exactly what the operator would make.
func Desire(ctx context.Context, m *iamv1alpha1.IAMIdentityMapping, roles Roles) accessentry.Desired {
	d := accessentry.Desired{Name: m.Name, UID: string(m.UID), Created: m.CreationTimestamp.Time}
	in := accessentry.InputFrom(m)
	t, err := accessentry.Translate(in)
	if err == nil && t.ResolveRole != "" && roles != nil {
		arn, resolveErr := roles.RoleARN(ctx, t.ResolveRole)
		switch {
		case eksapi.IsNotFound(resolveErr):
			d.Kind, d.Err = accessentry.DesiredPrincipalNotFound, fmt.Errorf("IAM has no role %s", t.ResolveRole)
			return d
		case resolveErr != nil:
			// Not knowing the ARN is no reason to delete the entry.
			d.Kind, d.Err = accessentry.DesiredPending, resolveErr
			return d
		}
		in.ResolvedARN = arn
		t, err = accessentry.Translate(in)
	}
	if err != nil {
		// Not representable, or refused as aws-auth refuses it: no entry.
		d.Kind, d.Err = accessentry.DesiredNotRepresentable, err
		return d
	}
	d.Kind, d.Entry = accessentry.DesiredEntry, t.Entry
	return d
}

// Observed is an entry as eksapi describes it, in the planner's terms:
// groups, policies and namespaces sorted, a policy on the whole cluster
// without namespaces.
func Observed(e eksapi.Entry) accessentry.Observed {
	entry := accessentry.Entry{
		PrincipalARN:     e.PrincipalARN,
		Type:             iamv1alpha1.AccessEntryType(e.Type),
		Username:         e.Username,
		KubernetesGroups: slices.Compact(slices.Sorted(slices.Values(e.Groups))),
	}
	for _, p := range e.Policies {
		var namespaces []string
		if p.Scope.Type == eksapi.ScopeNamespace {
			namespaces = slices.Compact(slices.Sorted(slices.Values(p.Scope.Namespaces)))
		}
		entry.Policies = append(entry.Policies, accessentry.Policy{ARN: p.PolicyARN, Namespaces: namespaces})
	}
	slices.SortFunc(entry.Policies, func(a, b accessentry.Policy) int { return cmp.Compare(a.ARN, b.ARN) })
	return accessentry.Observed{Entry: entry, Tags: maps.Clone(e.Tags)}
}
