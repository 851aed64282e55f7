package mappingtest

import (
	"slices"
	"testing"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
)

func TestBuilders(t *testing.T) {
	m := Mapping("admins",
		WithARN("arn:aws:iam::111122223333:role/admins"),
		WithUsername("admin:{{SessionName}}"),
		WithGroups("one"), WithGroups("platform:admins", "viewers"),
		WithAccount("444455556666"))
	if m.Name != "admins" || m.Namespace != "" {
		t.Errorf("name %q namespace %q, want admins and none (cluster-scoped)", m.Name, m.Namespace)
	}
	if m.Spec.ARN != "arn:aws:iam::111122223333:role/admins" || m.Spec.Username != "admin:{{SessionName}}" || m.Spec.AccountID != "444455556666" {
		t.Errorf("spec %+v", m.Spec)
	}
	// A later WithGroups replaces, it does not add.
	if want := []iamv1alpha1.IdentityName{"platform:admins", "viewers"}; !slices.Equal(m.Spec.Groups, want) {
		t.Errorf("groups %q, want %q", m.Spec.Groups, want)
	}
	if g := Mapping("x", WithGroups()).Spec.Groups; g != nil {
		t.Errorf("no groups gave %#v, want nil", g)
	}
}

func TestRole(t *testing.T) {
	m := Role("team-a", "arn:aws:iam::111122223333:role/team-a", "team:a")
	if m.Spec.Username != "team-a:{{SessionName}}" {
		t.Errorf("username %q, want team-a:{{SessionName}}", m.Spec.Username)
	}
	if m.Spec.ARN != "arn:aws:iam::111122223333:role/team-a" || !slices.Equal(m.Spec.Groups, []iamv1alpha1.IdentityName{"team:a"}) || m.Spec.AccountID != "" {
		t.Errorf("spec %+v", m.Spec)
	}
}
