package cli

import (
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/testing/awsfake"
)

// TestImportAccessEntries imports the entries of fakeEKS's cluster through
// the real SDK: the creator's entry (EKS's default username, the cluster
// admin policy), a node group's, one the operator made, and a plain one.
func TestImportAccessEntries(t *testing.T) {
	s := fakeEKS(t, awsfake.ModeAPI)
	r := run(t, t.TempDir(), "", "import", "--eks-cluster-name", "dev")
	check{code: 0, stderr: []string{"import: 4 IAMIdentityMappings written"}}.assert(t, r)
	assertOnlyReads(t, s)

	byName := map[string]iamv1alpha1.IAMIdentityMappingSpec{}
	for _, doc := range strings.Split(r.stdout, "\n---\n") {
		var m iamv1alpha1.IAMIdentityMapping
		if err := yaml.UnmarshalStrict([]byte(doc), &m); err != nil {
			t.Fatalf("%v in:\n%s", err, doc)
		}
		byName[m.Name] = m.Spec
	}
	names := func(gs []iamv1alpha1.IdentityName) string {
		var out []string
		for _, g := range gs {
			out = append(out, string(g))
		}
		return strings.Join(out, ",")
	}
	for name, want := range map[string]struct{ arn, username, groups string }{
		// EKS's own default username is kept, and cluster admin is
		// system:masters.
		"role-111122223333-creator":          {roleARN("creator"), "arn:aws:sts::111122223333:assumed-role/creator/{{SessionName}}", "system:masters"},
		"role-111122223333-eks-node-group-1": {roleARN("eks-node-group-1"), "system:node:{{EC2PrivateDNSName}}", "system:bootstrappers,system:nodes"},
		// The name its tag gives.
		"role-111122223333-admins": {adminsInIAM, "admin:{{SessionName}}", "system:masters"},
		"user-111122223333-bob":    {userARN("bob"), "bob", "ops"},
	} {
		got, ok := byName[name]
		if !ok {
			t.Errorf("no mapping %s in:\n%s", name, r.stdout)
			continue
		}
		if got.ARN != want.arn || string(got.Username) != want.username || names(got.Groups) != want.groups || len(got.AccessPolicies) > 0 {
			t.Errorf("%s: got arn %s username %s groups %s policies %v; want %+v", name, got.ARN, got.Username, names(got.Groups), got.AccessPolicies, want)
		}
	}
}

func TestImportAccessEntriesRefusals(t *testing.T) {
	t.Run("CONFIG_MAP mode has no entries", func(t *testing.T) {
		fakeEKS(t, awsfake.ModeConfigMap)
		r := run(t, t.TempDir(), "", "import", "--eks-cluster-name", "dev")
		check{code: 2, stderr: []string{"cluster dev is in CONFIG_MAP mode", "import aws-auth instead"}}.assert(t, r)
	})
	t.Run("API_AND_CONFIG_MAP warns that aws-auth may grant more", func(t *testing.T) {
		fakeEKS(t, awsfake.ModeAPIAndConfigMap)
		r := run(t, t.TempDir(), "", "import", "--eks-cluster-name", "dev")
		check{code: 0, stderr: []string{"aws-auth may grant access its access entries do not", "4 IAMIdentityMappings written"}}.assert(t, r)
	})
	t.Run("an entry no mapping reproduces", func(t *testing.T) {
		s := fakeEKS(t, awsfake.ModeAPI)
		if _, err := s.SeedEntry("dev", awsfake.AccessEntry{PrincipalARN: userARN("alice"), Username: "alice", KubernetesGroups: []string{"ops"},
			Tags: map[string]string{"iam.aws-auth-guardian.dev/mapping": "Not_A_Name"}}); err != nil {
			t.Fatal(err)
		}
		r := run(t, t.TempDir(), "", "import", "--eks-cluster-name", "dev")
		check{code: 1, stderr: []string{"4 IAMIdentityMappings written", "cannot become IAMIdentityMappings", userARN("alice"), "remove the tag"}}.assert(t, r)
	})
	t.Run("an unknown cluster", func(t *testing.T) {
		fakeEKS(t, awsfake.ModeAPI)
		r := run(t, t.TempDir(), "", "import", "--eks-cluster-name", "prod")
		check{code: 2, stderr: []string{"import: ", "prod"}}.assert(t, r)
	})
	t.Run("one source only", func(t *testing.T) {
		r := run(t, t.TempDir(), "", "import", "--eks-cluster-name", "dev", "--file", "x.yaml")
		check{code: 2, stderr: []string{"give one of --file, --kubeconfig and --eks-cluster-name"}}.assert(t, r)
	})
}
