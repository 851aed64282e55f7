package deploy

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite the chart's copies of config/ (charts/aws-auth-guardian/files)")

// chartCopies maps each folder under the chart's files/ to the kustomize
// folder of config/ whose resources it copies. The templates render every
// file there; the namespace aws-auth-guardian-system becomes the release
// namespace.
var chartCopies = map[string]string{
	"crd":                                   "config/crd",
	"rbac":                                  "config/rbac",
	"policy":                                "config/policy",
	"components/protect-rbac":               "config/components/protect-rbac",
	"components/protect-operator-namespace": "config/components/protect-operator-namespace",
	"components/prometheus":                 "config/components/prometheus",
}

// chartFileCopies maps files under the chart's files/ to the config/ file
// they copy, for what kustomize generates rather than lists: the
// dashboard's ConfigMap is made from its JSON.
var chartFileCopies = map[string]string{
	"components/grafana-dashboard/aws-auth-guardian.json": "config/components/grafana-dashboard/aws-auth-guardian.json",
}

// monitoringCopies are the copies the chart renders only for a Prometheus
// Operator (whose CRDs the deploy tests' API server does not have).
var monitoringCopies = []string{"config/components/prometheus"}

// TestChartFilesMatchConfig fails when a copy under the chart's files/ is
// stale (after `make manifests`, say); `go test -run TestChartFiles -update`
// refreshes them.
func TestChartFilesMatchConfig(t *testing.T) {
	filesDir := filepath.Join(chartDir(), "files")
	for copyDir, configDir := range chartCopies {
		want := map[string][]byte{}
		for _, res := range kustomizationResources(t, filepath.Join(repoRoot, configDir)) {
			data, err := os.ReadFile(filepath.Join(repoRoot, configDir, res))
			if err != nil {
				t.Fatal(err)
			}
			want[filepath.Base(res)] = data
		}
		dir := filepath.Join(filesDir, copyDir)
		have := map[string][]byte{}
		entries, err := os.ReadDir(dir)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		for _, e := range entries {
			data, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			have[e.Name()] = data
		}
		if *update {
			if err := os.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for name, data := range want {
				if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			continue
		}
		for name, data := range want {
			if !bytes.Equal(have[name], data) {
				t.Errorf("charts/aws-auth-guardian/files/%s/%s differs from %s/%s: run `cd test/deploy && go test -run TestChartFiles -update`", copyDir, name, configDir, name)
			}
		}
		for name := range have {
			if _, ok := want[name]; !ok {
				t.Errorf("charts/aws-auth-guardian/files/%s/%s is not a resource of %s: run `cd test/deploy && go test -run TestChartFiles -update`", copyDir, name, configDir)
			}
		}
	}
	for copyPath, configPath := range chartFileCopies {
		want, err := os.ReadFile(filepath.Join(repoRoot, configPath))
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(filesDir, copyPath)
		if *update {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if have, err := os.ReadFile(path); err != nil || !bytes.Equal(have, want) {
			t.Errorf("charts/aws-auth-guardian/files/%s differs from %s: run `cd test/deploy && go test -run TestChartFiles -update`", copyPath, configPath)
		}
	}
}

// kustomizationResources lists the files a kustomization (or component)
// takes its resources from; every one must be a file of that folder.
func kustomizationResources(t *testing.T, dir string) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		Resources []string `json:"resources"`
	}
	if err := yaml.Unmarshal(data, &k); err != nil {
		t.Fatalf("%s: %v", dir, err)
	}
	seen := map[string]bool{}
	for _, r := range k.Resources {
		if !filepath.IsLocal(r) || filepath.Ext(r) != ".yaml" || seen[filepath.Base(r)] {
			t.Fatalf("%s lists %q: the chart copies YAML files under the folder, one of each name", dir, r)
		}
		seen[filepath.Base(r)] = true
	}
	if len(k.Resources) == 0 {
		t.Fatalf("%s lists no resources", dir)
	}
	return slices.Sorted(slices.Values(k.Resources))
}
