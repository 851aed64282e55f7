package oracle

import (
	"bytes"
	"maps"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/aws-iam-authenticator/pkg/config"
	"sigs.k8s.io/aws-iam-authenticator/pkg/mapper/configmap"
	"sigs.k8s.io/yaml"

	"github.com/aws-auth-guardian/aws-auth-guardian/internal/cli"
)

// TestImportThenRenderServesTheSame adopts a realistic aws-auth with the
// import command, renders the result with the render command, and asks
// the authenticator whether the new aws-auth serves exactly what the old
// one did.
func TestImportThenRenderServesTheSame(t *testing.T) {
	t.Parallel()
	const acct = "111122223333"
	role := func(name string) string { return "arn:aws:iam::" + acct + ":role/" + name }
	user := func(name string) string { return "arn:aws:iam::" + acct + ":user/" + name }
	original := map[string]string{
		// As EKS writes the node role, then people append by hand: the
		// admins role twice in different case (the authenticator keeps
		// the last), a role named with punctuation.
		"mapRoles": `- groups:
  - system:bootstrappers
  - system:nodes
  rolearn: ` + role("eksctl-prod-nodegroup-ng-1-NodeInstanceRole-1A2B3C4D5E6F") + `
  username: system:node:{{EC2PrivateDNSName}}
- rolearn: ` + role("PlatformAdmins") + `
  username: stale-admin
  groups:
    - system:masters
- rolearn: ` + role("platformadmins") + `
  username: admin:{{SessionName}}
  groups:
    - system:masters
- rolearn: ` + role("ci_deployer@prod") + `
  username: ci
  groups: [deployers]
`,
		"mapUsers": `- userarn: ` + user("engineering/backend/alice") + `
  username: alice
  groups: [developers, viewers]
- userarn: ` + user("bob") + `
  username: bob
- userarn: ` + user("ops/carol") + `
  username: carol
  groups: [system:masters]
`,
		"mapAccounts": "- \"444455556666\"\n- 777788889999\n",
	}

	imported := runCLI(t, configMapDocument(t, original), "import", "--file", "-")
	if imported.code != 0 {
		t.Fatalf("import exit code %d, want 0\nstderr:\n%s", imported.code, imported.stderr)
	}
	if !strings.Contains(imported.stderr, role("PlatformAdmins")) {
		t.Errorf("import does not report the shadowed duplicate %s:\n%s", role("PlatformAdmins"), imported.stderr)
	}
	rendered := runCLI(t, imported.stdout, "render", "--file", "-")
	if rendered.code != 0 {
		t.Fatalf("render exit code %d, want 0\nstderr:\n%s\ninput:\n%s", rendered.code, rendered.stderr, imported.stdout)
	}
	var cm corev1.ConfigMap
	if err := yaml.Unmarshal([]byte(rendered.stdout), &cm); err != nil {
		t.Fatalf("render did not print a ConfigMap: %v\n%s", err, rendered.stdout)
	}

	before, after := served(t, "original", original), served(t, "render", cm.Data)
	if len(before) != 8 {
		t.Fatalf("the original serves %d identities, want 8 (the test data is off):\n%s", len(before), lines(sortItems(slices.Collect(maps.Values(before)))))
	}
	for _, key := range slices.Sorted(maps.Keys(before)) {
		if got, ok := after[key]; !ok {
			t.Errorf("the render no longer serves %s", before[key])
		} else if got != before[key] {
			t.Errorf("the render serves %s\nwhere the original served %s", got, before[key])
		}
	}
	for _, key := range slices.Sorted(maps.Keys(after)) {
		if _, ok := before[key]; !ok {
			t.Errorf("the render serves %s, which the original did not", after[key])
		}
	}
	// The render lists each identity once: nothing left for the
	// last-one-wins rule to decide.
	if v := readWithAuthenticator(cm.Data); len(v.items) != len(after) {
		t.Errorf("the render lists %d entries for %d identities:\n%s", len(v.items), len(after), dump(cm.Data))
	}
}

// served is what the authenticator's MapStore holds after reading data
// (MapStore.saveMap): roles keyed by the lower-cased ARN and users by the
// ARN as written, a later entry replacing an earlier one; accounts as a
// set. The user keys are lower-cased here too, as lookups ignore case; the
// test data has no user ARNs that differ only in case, which the
// authenticator would serve one of at random.
func served(t *testing.T, label string, data map[string]string) map[string]item {
	t.Helper()
	users, roles, accounts, err := configmap.ParseMap(data)
	if err != nil {
		t.Fatalf("%s: the authenticator cannot parse it: %v\n%s", label, err, dump(data))
	}
	out := map[string]item{}
	for _, r := range roles {
		if r.SSO != nil || r.UserId != "" {
			t.Fatalf("%s: the test data should map only plain roles, got %+v", label, r)
		}
		out["role "+r.Key()] = item{Section: "mapRoles", Identity: strings.ToLower(r.RoleARN), Username: r.Username, Groups: joinGroups(r.Groups)}
	}
	for _, u := range users {
		out["user "+strings.ToLower(u.Key())] = item{Section: "mapUsers", Identity: strings.ToLower(u.UserARN), Username: u.Username, Groups: joinGroups(u.Groups)}
	}
	for _, a := range accounts {
		out["account "+a] = item{Section: "mapAccounts", Identity: a}
	}
	return out
}

func configMapDocument(t *testing.T, data map[string]string) string {
	t.Helper()
	cm := corev1.ConfigMap{Data: data}
	cm.APIVersion, cm.Kind = "v1", "ConfigMap"
	cm.Namespace, cm.Name = "kube-system", "aws-auth"
	out, err := yaml.Marshal(cm)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

type cliResult struct {
	code           int
	stdout, stderr string
}

func runCLI(t *testing.T, stdin string, args ...string) cliResult {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := cli.Execute(args, strings.NewReader(stdin), &stdout, &stderr, nil)
	return cliResult{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// TestAuthenticatorKeys pins what adopt.FromData builds on: the
// authenticator keeps one role per ARN without case (a later entry
// replaces an earlier one), but users per ARN as written, so two users
// whose ARNs differ only in case both stay and either may be served.
func TestAuthenticatorKeys(t *testing.T) {
	t.Parallel()
	r := config.RoleMapping{RoleARN: "arn:aws:iam::111122223333:role/Admins"}
	if got, want := r.Key(), strings.ToLower(r.RoleARN); got != want {
		t.Errorf("RoleMapping.Key() = %q, want %q", got, want)
	}
	u := config.UserMapping{UserARN: "arn:aws:iam::111122223333:user/Bob"}
	if got := u.Key(); got != u.UserARN {
		t.Errorf("UserMapping.Key() = %q, want the ARN as written, %q", got, u.UserARN)
	}
	if !u.Matches(strings.ToLower(u.UserARN)) {
		t.Errorf("UserMapping.Matches is expected to ignore case")
	}
}
