package controllers

import (
	"context"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/adopt"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/managed"
)

// adoption is what adopt found and did.
type adoption struct {
	// pending: mappings were just created and are not all in the cache yet.
	pending bool
	// held says why the takeover must wait for a person, if it must.
	held *awsauth.Refusal
	// created counts the mappings created; found is what adopt made of
	// aws-auth (for the report).
	created int
	found   adopt.Adoption
}

// adopt turns the entries of an aws-auth this operator did not write into
// IAMIdentityMappings before anything is rendered over it, so installing
// the operator loses nothing. It runs only on first start: once a backup
// exists the operator has written aws-auth, and an aws-auth it did not
// write is drift (someone recreated it), not something to adopt.
func (r *AWSAuthReconciler) adopt(ctx context.Context, observed managed.Observed, existing []iamv1alpha1.IAMIdentityMapping) (adoption, error) {
	live := observed.Object
	if live == nil || managed.IsManaged(live) {
		return adoption{}, nil
	}
	_, written, err := r.record(ctx)
	if err != nil || written {
		return adoption{}, err
	}
	a := adoption{found: adopt.FromParsed(observed.Entries, observed.Rejected)}
	have := make(map[string]bool, len(existing))
	for _, m := range existing {
		have[m.Name] = true
	}
	for i := range a.found.Mappings {
		m := &a.found.Mappings[i]
		if have[m.Name] {
			continue
		}
		// Missing from the cache: created now, or by an earlier pass that
		// the cache has not caught up with. Either way, render nothing yet.
		a.pending = true
		err := r.Client.Create(ctx, m)
		switch {
		case err == nil:
			a.created++
		case !apierrors.IsAlreadyExists(err):
			return a, fmt.Errorf("adopting %s as IAMIdentityMapping %s: %w", identityOf(m), m.Name, err)
		}
	}
	if !a.pending && len(a.found.Unrepresentable) > 0 {
		a.held = &awsauth.Refusal{
			Reason: awsauth.RefusedUnrepresentable,
			Message: fmt.Sprintf("aws-auth has %d entries no IAMIdentityMapping can represent, which the render would drop: %s",
				len(a.found.Unrepresentable), strings.Join(a.found.Unrepresentable, " ")),
		}
	}
	return a, nil
}

func identityOf(m *iamv1alpha1.IAMIdentityMapping) string {
	if m.Spec.ARN != "" {
		return m.Spec.ARN
	}
	return "account " + m.Spec.AccountID
}
