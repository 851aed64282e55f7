package alerts

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

const (
	ruleFile      = "../../config/components/prometheus/prometheus_rule.yaml"
	dashboardFile = "../../config/components/grafana-dashboard/aws-auth-guardian.json"
	exportedFile  = "testdata/exported-metrics.txt"
)

// rule is one rule of the PrometheusRule.
type rule struct {
	Alert       string            `yaml:"alert"`
	Record      string            `yaml:"record"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

type ruleGroup struct {
	Name  string `yaml:"name"`
	Rules []rule `yaml:"rules"`
}

// ruleGroups reads the PrometheusRule's spec, which is a Prometheus rules
// file as it is, and writes it out as one, for the rule manager to load.
func ruleGroups(t *testing.T) ([]ruleGroup, string) {
	t.Helper()
	raw, err := os.ReadFile(ruleFile)
	if err != nil {
		t.Fatal(err)
	}
	var obj struct {
		Kind string    `yaml:"kind"`
		Spec yaml.Node `yaml:"spec"`
	}
	if err := yaml.Unmarshal(raw, &obj); err != nil {
		t.Fatalf("%s: %v", ruleFile, err)
	}
	if obj.Kind != "PrometheusRule" {
		t.Fatalf("%s holds a %q, want a PrometheusRule", ruleFile, obj.Kind)
	}
	var spec struct {
		Groups []ruleGroup `yaml:"groups"`
	}
	if err := obj.Spec.Decode(&spec); err != nil {
		t.Fatalf("%s spec: %v", ruleFile, err)
	}
	if len(spec.Groups) == 0 {
		t.Fatalf("%s has no rule groups", ruleFile)
	}
	out, err := yaml.Marshal(&obj.Spec)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "aws-auth-guardian.rules.yaml")
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
	return spec.Groups, path
}

// alerts is every alerting rule of the file, by name.
func alerts(t *testing.T) map[string]rule {
	t.Helper()
	groups, _ := ruleGroups(t)
	found := map[string]rule{}
	for _, g := range groups {
		for _, r := range g.Rules {
			if _, dup := found[r.Alert]; dup {
				t.Errorf("alert %s is defined twice", r.Alert)
			}
			found[r.Alert] = r
		}
	}
	return found
}

// panel is the part of a Grafana panel the tests read.
type panel struct {
	Title   string `json:"title"`
	Type    string `json:"type"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // of a collapsed row
}

type dashboard struct {
	UID    string  `json:"uid"`
	Title  string  `json:"title"`
	Panels []panel `json:"panels"`
}

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// dashboardQueries is every panel's PromQL, by panel title.
func dashboardQueries(d dashboard) map[string][]string {
	out := map[string][]string{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, target := range p.Targets {
				out[p.Title] = append(out[p.Title], target.Expr)
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// exportedMetrics is the operator's metric families with their types.
func exportedMetrics(t *testing.T) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(exportedFile)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(string(raw), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, typ, ok := strings.Cut(line, " ")
		if !ok {
			t.Fatalf("%s: bad line %q", exportedFile, line)
		}
		out[name] = typ
	}
	if _, ok := out["aws_auth_guardian_aws_auth_present"]; !ok {
		t.Fatalf("%s does not list aws_auth_guardian_aws_auth_present: was it read right?", exportedFile)
	}
	return out
}
