package controllers

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/adopt"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/managed"
)

// reasonUnrepresentable labels a takeover held because aws-auth has entries
// no IAMIdentityMapping can say.
const reasonUnrepresentable = "Unrepresentable"

// adoption is what adopt found.
type adoption struct {
	// pending: mappings were just created and are not all in the cache yet.
	pending bool
	// held says why the takeover must wait for a person, if it must.
	held *awsauth.Wipe
}

// adopt turns the entries of an aws-auth this operator did not write into
// IAMIdentityMappings before anything is rendered over it, so installing
// the operator loses nothing. It runs only on first start: once a backup
// exists the operator has written aws-auth, and an aws-auth it did not
// write is drift (someone recreated it), not something to adopt.
func (r *AWSAuthReconciler) adopt(ctx context.Context, live *corev1.ConfigMap, existing []iamv1alpha1.IAMIdentityMapping) (adoption, error) {
	if live == nil || managed.IsManaged(live) {
		return adoption{}, nil
	}
	_, written, err := r.record(ctx)
	if err != nil || written {
		return adoption{}, err
	}
	found := adopt.FromData(live.Data)
	have := make(map[string]bool, len(existing))
	for _, m := range existing {
		have[m.Name] = true
	}
	created, missing := 0, 0
	for i := range found.Mappings {
		m := &found.Mappings[i]
		if have[m.Name] {
			continue
		}
		// Missing from the cache: created now, or by an earlier pass that
		// the cache has not caught up with. Either way, render nothing yet.
		missing++
		err := r.Client.Create(ctx, m)
		switch {
		case err == nil:
			created++
		case !apierrors.IsAlreadyExists(err):
			return adoption{}, fmt.Errorf("adopting %s as IAMIdentityMapping %s: %w", awsauthIdentity(m), m.Name, err)
		}
	}
	log := ctrl.LoggerFrom(ctx)
	if created > 0 {
		log.Info("Adopted the existing aws-auth", "mappings", created, "shadowed", len(found.Shadowed), "unrepresentable", len(found.Unrepresentable))
		r.Recorder.Eventf(live, nil, corev1.EventTypeNormal, "Adopted", "Adopt",
			"Created %d IAMIdentityMappings from the entries of aws-auth; %d duplicate entries the authenticator never served were left out", created, len(found.Shadowed))
		for _, s := range found.Shadowed {
			log.Info("Left out an entry the authenticator never serves", "entry", s)
		}
	}
	if missing > 0 {
		return adoption{pending: true}, nil
	}
	if len(found.Unrepresentable) > 0 {
		return adoption{held: &awsauth.Wipe{
			Reason: reasonUnrepresentable,
			Message: fmt.Sprintf("aws-auth has %d entries no IAMIdentityMapping can represent, which the render would drop: %s",
				len(found.Unrepresentable), strings.Join(found.Unrepresentable, " ")),
		}}, nil
	}
	return adoption{}, nil
}

func awsauthIdentity(m *iamv1alpha1.IAMIdentityMapping) string {
	if m.Spec.ARN != "" {
		return m.Spec.ARN
	}
	return "account " + m.Spec.AccountID
}
