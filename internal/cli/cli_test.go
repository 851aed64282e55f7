package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
)

const acct = "111122223333"

func roleARN(name string) string { return "arn:aws:iam::" + acct + ":role/" + name }
func userARN(name string) string { return "arn:aws:iam::" + acct + ":user/" + name }

// realisticData is an aws-auth as EKS and people leave it: a node role,
// admins listed twice in different case, users with paths, an account, and
// a role with a path that the authenticator never matches.
var realisticData = map[string]string{
	"mapRoles": `- rolearn: ` + roleARN("eks-node-group-1") + `
  username: system:node:{{EC2PrivateDNSName}}
  groups:
    - system:bootstrappers
    - system:nodes
- rolearn: ` + roleARN("Admins") + `
  username: old-admin
  groups: [system:masters]
- rolearn: ` + roleARN("admins") + `
  username: admin:{{SessionName}}
  groups: [system:masters]
- rolearn: ` + roleARN("team/ops") + `
  username: ops
`,
	"mapUsers": `- userarn: ` + userARN("engineering/alice") + `
  username: alice
  groups: ["dev"]
- userarn: ` + userARN("bob") + `
  username: bob
`,
	"mapAccounts": "- 444455556666\n",
}

// servedWithoutPaths is what the authenticator serves from realisticData
// and an IAMIdentityMapping can say: the last of the admins, no role path.
var servedWithoutPaths = []awsauth.Entry{
	{Section: awsauth.MapRoles, Identity: roleARN("admins"), Username: "admin:{{SessionName}}", Groups: []string{"system:masters"}},
	{Section: awsauth.MapRoles, Identity: roleARN("eks-node-group-1"), Username: "system:node:{{EC2PrivateDNSName}}", Groups: []string{"system:bootstrappers", "system:nodes"}},
	{Section: awsauth.MapUsers, Identity: userARN("bob"), Username: "bob"},
	{Section: awsauth.MapUsers, Identity: userARN("engineering/alice"), Username: "alice", Groups: []string{"dev"}},
	{Section: awsauth.MapAccounts, Identity: "444455556666"},
}

func configMapYAML(t *testing.T, data map[string]string) string {
	t.Helper()
	cm := corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "aws-auth"},
		Data:       data,
	}
	out, err := yaml.Marshal(cm)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// result is what one run of a subcommand printed and returned.
type result struct {
	code           int
	stdout, stderr string
}

// run runs args in dir (relative file names are taken from there) with
// stdin.
func run(t *testing.T, dir, stdin string, args ...string) result {
	t.Helper()
	for i, a := range args {
		if i > 0 && args[i-1] == "--file" && a != "-" {
			args[i] = filepath.Join(dir, a)
		}
	}
	var stdout, stderr bytes.Buffer
	code := Execute(args, strings.NewReader(stdin), &stdout, &stderr, nil)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// check asserts the exit code and that each output holds every string of
// its want list and none of its not list.
type check struct {
	code                      int
	stdout, stderr, notStdout []string
}

func (c check) assert(t *testing.T, r result) {
	t.Helper()
	if r.code != c.code {
		t.Errorf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, c.code, r.stdout, r.stderr)
	}
	for _, want := range c.stdout {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout does not mention %q:\n%s", want, r.stdout)
		}
	}
	for _, want := range c.stderr {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr does not mention %q:\n%s", want, r.stderr)
		}
	}
	for _, not := range c.notStdout {
		if strings.Contains(r.stdout, not) {
			t.Errorf("stdout mentions %q:\n%s", not, r.stdout)
		}
	}
}

func TestImportFromFile(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		files map[string]string
		stdin string
		args  []string
		want  check
	}{
		{
			name:  "realistic aws-auth",
			files: map[string]string{"aws-auth.yaml": configMapYAML(t, realisticData)},
			args:  []string{"import", "--file", "aws-auth.yaml"},
			want: check{
				code: 1,
				stdout: []string{
					"kind: IAMIdentityMapping", "name: role-111122223333-admins\n", "name: role-111122223333-eks-node-group-1\n",
					"name: user-111122223333-bob\n", "name: account-444455556666\n", "iam.aws-auth-guardian.dev/adopted: \"true\"",
					"username: admin:{{SessionName}}", "\n---\n",
				},
				notStdout: []string{"status", "creationTimestamp", "old-admin", "team/ops", "namespace"},
				stderr:    []string{"5 IAMIdentityMappings written", roleARN("Admins"), "old-admin", roleARN("team/ops"), "path"},
			},
		},
		{
			name:  "served entries only: exit 0",
			files: map[string]string{"aws-auth.yaml": configMapYAML(t, map[string]string{"mapUsers": realisticData["mapUsers"]})},
			args:  []string{"import", "--file", "aws-auth.yaml"},
			want:  check{code: 0, stdout: []string{userARN("bob"), userARN("engineering/alice")}, stderr: []string{"2 IAMIdentityMappings written"}},
		},
		{
			name:  "from stdin",
			stdin: configMapYAML(t, map[string]string{"mapAccounts": "- 444455556666\n"}),
			args:  []string{"import", "--file", "-"},
			want:  check{code: 0, stdout: []string{"accountID: \"444455556666\""}},
		},
		{
			name:  "a ConfigMap as JSON",
			stdin: `{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "aws-auth"}, "data": {"mapAccounts": "- 444455556666"}}`,
			args:  []string{"import", "--file", "-"},
			want:  check{code: 0, stdout: []string{"name: account-444455556666"}},
		},
		{
			name:  "an empty aws-auth",
			files: map[string]string{"aws-auth.yaml": configMapYAML(t, nil)},
			args:  []string{"import", "--file", "aws-auth.yaml"},
			want:  check{code: 0, stderr: []string{"0 IAMIdentityMappings written"}},
		},
		{
			name:  "sso and userid entries",
			files: map[string]string{"aws-auth.yaml": configMapYAML(t, map[string]string{"mapRoles": "- sso:\n    permissionSetName: Admin\n    accountID: \"" + acct + "\"\n  username: sso\n- rolearn: " + roleARN("x") + "\n  userid: AROA1\n  username: x\n"})},
			args:  []string{"import", "--file", "aws-auth.yaml"},
			want:  check{code: 1, stderr: []string{"sso", roleARN("x"), "userid", "decide on each"}},
		},
		{
			// The same words as kubectl apply and the mapping's status.
			name:  "an account ID of 11 digits",
			files: map[string]string{"aws-auth.yaml": configMapYAML(t, map[string]string{"mapAccounts": "- \"11112222333\"\n"})},
			args:  []string{"import", "--file", "aws-auth.yaml"},
			want:  check{code: 1, stderr: []string{awsauth.RuleAccountID, `"11112222333"`}},
		},
		{
			name: "missing file",
			args: []string{"import", "--file", "nope.yaml"},
			want: check{code: 2, stderr: []string{"nope.yaml", "no such file"}},
		},
		{
			name:  "not a ConfigMap",
			files: map[string]string{"secret.yaml": "apiVersion: v1\nkind: Secret\nmetadata:\n  name: aws-auth\n"},
			args:  []string{"import", "--file", "secret.yaml"},
			want:  check{code: 2, stderr: []string{"Secret", "not a ConfigMap"}},
		},
		{
			name:  "not a Kubernetes object",
			files: map[string]string{"list.yaml": "- a\n- b\n"},
			args:  []string{"import", "--file", "list.yaml"},
			want:  check{code: 2, stderr: []string{"not a Kubernetes object"}},
		},
		{
			name:  "not YAML",
			files: map[string]string{"bad.yaml": "kind: ConfigMap\n  data: [\n"},
			args:  []string{"import", "--file", "bad.yaml"},
			want:  check{code: 2, stderr: []string{"not valid YAML"}},
		},
		{
			name:  "two ConfigMaps",
			files: map[string]string{"two.yaml": configMapYAML(t, nil) + "---\n" + configMapYAML(t, nil)},
			args:  []string{"import", "--file", "two.yaml"},
			want:  check{code: 2, stderr: []string{"2 objects", "exactly one"}},
		},
		{
			name: "both a file and a kubeconfig",
			args: []string{"import", "--file", "-", "--kubeconfig", "/dev/null"},
			want: check{code: 2, stderr: []string{"give one of --file, --kubeconfig and --eks-cluster-name"}},
		},
		{
			name: "unknown flag",
			args: []string{"import", "--fiel", "x"},
			want: check{code: 2, stderr: []string{"unknown flag: --fiel", "Run 'manager import --help' for usage."}},
		},
		{
			name:  "the file as an argument",
			files: map[string]string{"aws-auth.yaml": configMapYAML(t, nil)},
			args:  []string{"import", "aws-auth.yaml"},
			want:  check{code: 2, stderr: []string{`"manager import" takes no arguments`, "--help"}},
		},
		{
			name: "help",
			args: []string{"import", "-h"},
			want: check{code: 0, stdout: []string{"manager import [--kubeconfig PATH | --file PATH|- | --eks-cluster-name NAME]", "--eks-cluster-name name", "--kubeconfig path", "--file path", "Exit code 2"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := writeFiles(t, tt.files)
			tt.want.assert(t, run(t, dir, tt.stdin, tt.args...))
		})
	}
}

// TestImportFromCluster reads aws-auth through a kubeconfig from a fake
// API server that answers the one GET the command makes.
func TestImportFromCluster(t *testing.T) {
	t.Parallel()
	cm := corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "aws-auth"},
		Data:       map[string]string{"mapUsers": realisticData["mapUsers"]},
	}
	found := fakeAPIServer(t, http.StatusOK, cm)
	missing := fakeAPIServer(t, http.StatusNotFound, metav1.Status{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Status"}, Status: metav1.StatusFailure,
		Reason: metav1.StatusReasonNotFound, Code: http.StatusNotFound,
		Details: &metav1.StatusDetails{Name: "aws-auth", Kind: "configmaps"},
	})
	gone := fakeAPIServer(t, http.StatusOK, cm)
	gone.Close()

	tests := []struct {
		name   string
		server string
		want   check
	}{
		{name: "found", server: found.URL, want: check{code: 0, stdout: []string{"name: user-111122223333-bob\n", userARN("engineering/alice")}}},
		{name: "not found", server: missing.URL, want: check{code: 2, stderr: []string{"kube-system/aws-auth", "nothing to import"}}},
		{name: "unreachable", server: gone.URL, want: check{code: 2, stderr: []string{"cannot read kube-system/aws-auth", gone.URL}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := writeFiles(t, map[string]string{"kubeconfig": `apiVersion: v1
kind: Config
clusters: [{name: test, cluster: {server: "` + tt.server + `"}}]
users: [{name: test, user: {token: test}}]
contexts: [{name: test, context: {cluster: test, user: test}}]
current-context: test
`})
			tt.want.assert(t, run(t, dir, "", "import", "--kubeconfig", filepath.Join(dir, "kubeconfig")))
		})
	}
	t.Run("no kubeconfig", func(t *testing.T) {
		t.Parallel()
		check{code: 2, stderr: []string{"cannot find the cluster", "no-such-kubeconfig"}}.assert(t, run(t, "", "", "import", "--kubeconfig", filepath.Join(t.TempDir(), "no-such-kubeconfig")))
	})
}

func fakeAPIServer(t *testing.T, status int, body any) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/api/v1/namespaces/kube-system/configmaps/aws-auth" {
			http.Error(w, "unexpected request "+r.Method+" "+r.URL.Path, http.StatusTeapot)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(body)
	}))
	t.Cleanup(s.Close)
	return s
}

func mappingYAML(name, spec string) string {
	return "apiVersion: iam.aws-auth-guardian.dev/v1alpha1\nkind: IAMIdentityMapping\nmetadata:\n  name: " + name + "\nspec:\n" + spec
}

func TestRender(t *testing.T) {
	t.Parallel()
	admins := mappingYAML("admins", "  arn: "+roleARN("admins")+"\n  username: admin\n  groups: [system:masters]\n")
	nodes := mappingYAML("nodes", "  arn: "+roleARN("team/nodes")+"\n  username: system:node:{{EC2PrivateDNSName}}\n  groups: [system:bootstrappers, system:nodes]\n")
	account := mappingYAML("account", "  accountID: \"444455556666\"\n")
	tests := []struct {
		name  string
		files map[string]string
		stdin string
		args  []string
		want  check
	}{
		{
			name:  "several documents and files",
			files: map[string]string{"a.yaml": admins + "---\n# a comment only\n---\n" + nodes, "b.yaml": account},
			args:  []string{"render", "--file", "a.yaml", "--file", "b.yaml"},
			want: check{code: 0, stdout: []string{
				"kind: ConfigMap", "name: aws-auth", "namespace: kube-system", "immutable: true",
				"app.kubernetes.io/managed-by: aws-auth-guardian", "iam.aws-auth-guardian.dev/protection", "iam.aws-auth-guardian.dev/data-sha256",
				"rolearn: " + roleARN("nodes"), "rolearn: " + roleARN("admins"), "444455556666",
			}, notStdout: []string{"team/nodes", "creationTimestamp"}},
		},
		{
			name:  "mutable",
			files: map[string]string{"a.yaml": admins},
			args:  []string{"render", "--file", "a.yaml", "--configmap-mode", "mutable"},
			want:  check{code: 0, stdout: []string{"name: aws-auth"}, notStdout: []string{"immutable"}},
		},
		{
			name:  "a List from stdin",
			stdin: "apiVersion: v1\nkind: List\nitems:\n- " + strings.ReplaceAll(strings.TrimSuffix(admins, "\n"), "\n", "\n  ") + "\n",
			args:  []string{"render", "--file", "-"},
			want:  check{code: 0, stdout: []string{"rolearn: " + roleARN("admins")}},
		},
		{
			name: "an IAMIdentityMappingList as JSON",
			stdin: `{"apiVersion": "iam.aws-auth-guardian.dev/v1alpha1", "kind": "IAMIdentityMappingList", "items": [
				{"apiVersion": "iam.aws-auth-guardian.dev/v1alpha1", "kind": "IAMIdentityMapping", "metadata": {"name": "a"}, "spec": {"accountID": "444455556666"}}]}`,
			args: []string{"render", "--file", "-"},
			want: check{code: 0, stdout: []string{"mapAccounts"}},
		},
		{
			name:  "a typo in a field",
			files: map[string]string{"a.yaml": admins + "---\n" + mappingYAML("typo", "  arn: "+roleARN("x")+"\n  usernme: x\n")},
			args:  []string{"render", "--file", "a.yaml"},
			want:  check{code: 1, stderr: []string{`typo: unknown field "spec.usernme"`}, notStdout: []string{"aws-auth"}},
		},
		{
			name:  "a field in the wrong case",
			files: map[string]string{"a.yaml": mappingYAML("case", "  arn: "+roleARN("x")+"\n  userName: x\n")},
			args:  []string{"render", "--file", "a.yaml"},
			want:  check{code: 1, stderr: []string{`case: unknown field "spec.userName"`}},
		},
		{
			name:  "a field of the wrong type",
			files: map[string]string{"a.yaml": mappingYAML("groups", "  arn: "+roleARN("x")+"\n  username: x\n  groups: system:masters\n")},
			args:  []string{"render", "--file", "a.yaml"},
			want:  check{code: 1, stderr: []string{"groups: ", "spec.groups"}},
		},
		{
			name: "invalid mappings and a conflict, each reported",
			files: map[string]string{"a.yaml": admins + "---\n" +
				mappingYAML("admins-again", "  arn: "+roleARN("ops/Admins")+"\n  username: other\n") + "---\n" +
				mappingYAML("template", "  arn: "+roleARN("t")+"\n  username: x:{{Foo}}\n") + "---\n" +
				mappingYAML("session", "  arn: arn:aws:sts::"+acct+":assumed-role/admins/me\n  username: x\n") + "---\n" +
				mappingYAML("both", "  arn: "+roleARN("b")+"\n  username: b\n  accountID: \"444455556666\"\n")},
			args: []string{"render", "--file", "a.yaml"},
			want: check{code: 1, stderr: []string{
				"admins-again: maps " + roleARN("Admins") + ", as admins does",
				"both: set exactly one of arn",
				"session: ", "assumed-role", roleARN("admins"),
				"template: username: the only templates are", `(got "{{Foo}}")`,
			}, notStdout: []string{"aws-auth"}},
		},
		{
			name:  "the same name twice",
			files: map[string]string{"a.yaml": admins, "b.yaml": admins},
			args:  []string{"render", "--file", "a.yaml", "--file", "b.yaml"},
			want:  check{code: 1, stderr: []string{"admins: defined twice", "a.yaml, document 1", "b.yaml, document 1"}},
		},
		{
			name:  "another kind",
			files: map[string]string{"a.yaml": admins + "---\n" + configMapYAML(t, nil)},
			args:  []string{"render", "--file", "a.yaml"},
			want:  check{code: 2, stderr: []string{"a.yaml, document 2 holds a ConfigMap", "not an IAMIdentityMapping"}},
		},
		{
			name:  "another version",
			files: map[string]string{"a.yaml": strings.Replace(admins, "v1alpha1", "v1", 1)},
			args:  []string{"render", "--file", "a.yaml"},
			want:  check{code: 2, stderr: []string{"iam.aws-auth-guardian.dev/v1", "not an IAMIdentityMapping"}},
		},
		{
			name:  "the authenticator's own CRD",
			files: map[string]string{"a.yaml": strings.Replace(admins, "iam.aws-auth-guardian.dev/v1alpha1", "iamauthenticator.k8s.aws/v1alpha1", 1)},
			args:  []string{"render", "--file", "a.yaml"},
			want:  check{code: 2, stderr: []string{"iamauthenticator.k8s.aws/v1alpha1", "not an IAMIdentityMapping"}},
		},
		{
			name:  "no name",
			files: map[string]string{"a.yaml": strings.Replace(admins, "  name: admins\n", "  labels: {a: b}\n", 1)},
			args:  []string{"render", "--file", "a.yaml"},
			want:  check{code: 2, stderr: []string{"no metadata.name"}},
		},
		{
			name:  "no mappings",
			files: map[string]string{"a.yaml": "# nothing yet\n"},
			args:  []string{"render", "--file", "a.yaml"},
			want:  check{code: 2, stderr: []string{"no IAMIdentityMapping"}},
		},
		{
			name: "missing file",
			args: []string{"render", "--file", "nope.yaml"},
			want: check{code: 2, stderr: []string{"nope.yaml", "no such file"}},
		},
		{
			name: "no file",
			args: []string{"render"},
			want: check{code: 2, stderr: []string{"at least one --file"}},
		},
		{
			name: "stdin twice",
			args: []string{"render", "--file", "-", "--file", "-"},
			want: check{code: 2, stderr: []string{"only once"}},
		},
		{
			name:  "unknown mode",
			files: map[string]string{"a.yaml": admins},
			args:  []string{"render", "--file", "a.yaml", "--configmap-mode", "readonly"},
			want:  check{code: 2, stderr: []string{`"readonly"`, "immutable", "mutable"}},
		},
		{
			name:  "a file as an argument",
			files: map[string]string{"a.yaml": admins},
			args:  []string{"render", "--file", "a.yaml", "a.yaml"},
			want:  check{code: 2, stderr: []string{`"manager render" takes no arguments`, "--help"}},
		},
		{
			name: "help",
			args: []string{"render", "--help"},
			want: check{code: 0, stdout: []string{"manager render --file PATH|-", "--configmap-mode mode", "<name>: <reason>"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := writeFiles(t, tt.files)
			r := run(t, dir, tt.stdin, tt.args...)
			tt.want.assert(t, r)
			if r.code != 0 && r.stdout != "" {
				t.Errorf("a failed render printed to stdout:\n%s", r.stdout)
			}
		})
	}
}

// TestRenderIsTheOperatorsConfigMap checks the whole object, not pieces of
// its text.
func TestRenderIsTheOperatorsConfigMap(t *testing.T) {
	t.Parallel()
	dir := writeFiles(t, map[string]string{"a.yaml": mappingYAML("alice", "  arn: "+userARN("alice")+"\n  username: alice\n")})
	r := run(t, dir, "", "render", "--file", "a.yaml")
	check{code: 0}.assert(t, r)
	var cm corev1.ConfigMap
	if err := yaml.UnmarshalStrict([]byte(r.stdout), &cm); err != nil {
		t.Fatalf("the render is not a ConfigMap: %v\n%s", err, r.stdout)
	}
	rendered, err := awsauth.Render([]awsauth.Entry{{Section: awsauth.MapUsers, Identity: userARN("alice"), Username: "alice"}})
	if err != nil {
		t.Fatal(err)
	}
	want := corev1.ConfigMap{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{
			Namespace: "kube-system", Name: "aws-auth",
			Labels: map[string]string{iamv1alpha1.ManagedByLabel: iamv1alpha1.ManagedByValue},
			Annotations: map[string]string{
				iamv1alpha1.DataHashAnnotation:       awsauth.Hash(rendered.Data),
				"argocd.argoproj.io/compare-options": "IgnoreExtraneous",
				"argocd.argoproj.io/sync-options":    "Prune=false,Delete=false",
			},
			Finalizers: []string{iamv1alpha1.ProtectionFinalizer},
		},
		Immutable: new(true),
		Data:      rendered.Data,
	}
	if diff := gocmp.Diff(want, cm); diff != "" {
		t.Errorf("ConfigMap mismatch (-want +got):\n%s", diff)
	}
}

// TestImportThenRender: the manifests import writes render back to what
// the authenticator served, less what no mapping can say (roles with a
// path, shadowed duplicates).
func TestImportThenRender(t *testing.T) {
	t.Parallel()
	dir := writeFiles(t, map[string]string{"aws-auth.yaml": configMapYAML(t, realisticData)})
	imported := run(t, dir, "", "import", "--file", "aws-auth.yaml")
	check{code: 1}.assert(t, imported) // the role with a path
	rendered := run(t, dir, imported.stdout, "render", "--file", "-")
	check{code: 0}.assert(t, rendered)

	var cm corev1.ConfigMap
	if err := yaml.Unmarshal([]byte(rendered.stdout), &cm); err != nil {
		t.Fatalf("the render is not a ConfigMap: %v\n%s", err, rendered.stdout)
	}
	got, errs := awsauth.Parse(cm.Data)
	if len(errs) > 0 {
		t.Fatalf("the render does not parse: %v", errs)
	}
	if diff := gocmp.Diff(servedWithoutPaths, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("entries mismatch (-want +got):\n%s", diff)
	}
}

// A result that cannot be written must fail the command, or CI would take
// a truncated render for a good one.
func TestOutputThatCannotBeWritten(t *testing.T) {
	t.Parallel()
	dir := writeFiles(t, map[string]string{
		"m.yaml":        mappingYAML("alice", "  arn: "+userARN("alice")+"\n  username: alice\n"),
		"aws-auth.yaml": configMapYAML(t, map[string]string{"mapAccounts": "- 444455556666\n"}),
	})
	for _, args := range [][]string{
		{"render", "--file", filepath.Join(dir, "m.yaml")},
		{"import", "--file", filepath.Join(dir, "aws-auth.yaml")},
	} {
		var stderr bytes.Buffer
		code := Execute(args, strings.NewReader(""), failingWriter{}, &stderr, nil)
		if code != exitBadInput || !strings.Contains(stderr.String(), "writing the output: broken pipe") {
			t.Errorf("%s: exit code %d, stderr %q; want %d and the write error", args[0], code, stderr.String(), exitBadInput)
		}
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }
