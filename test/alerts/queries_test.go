package alerts

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// madeByPrometheus are series Prometheus writes itself, not the operator.
var madeByPrometheus = map[string]bool{"up": true}

// grafanaVariables are the dashboard's Grafana variables, given the value
// Grafana would, so that the query parses as Prometheus receives it.
var grafanaVariables = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h")

// checkQuery parses a query as Prometheus does and returns an error for
// each metric it names that the operator does not export (a histogram's
// _bucket, _sum and _count, a summary's _sum and _count count as its
// family's).
func checkQuery(p parser.Parser, exported map[string]string, query string) []error {
	expr, err := p.ParseExpr(grafanaVariables.Replace(query))
	if err != nil {
		return []error{fmt.Errorf("%q does not parse: %w", query, err)}
	}
	var errs []error
	names := 0
	parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
		vs, ok := node.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		for _, m := range vs.LabelMatchers {
			if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
				name = m.Value
			}
		}
		names++
		if name == "" {
			errs = append(errs, fmt.Errorf("%q selects series by a metric name pattern: name the metric", query))
		} else if !exportedSeries(exported, name) {
			errs = append(errs, fmt.Errorf("%q names %s, which the operator does not export", query, name))
		}
		return nil
	})
	if names == 0 {
		errs = append(errs, fmt.Errorf("%q names no metric", query))
	}
	return errs
}

func exportedSeries(exported map[string]string, name string) bool {
	if madeByPrometheus[name] {
		return true
	}
	if _, ok := exported[name]; ok {
		return true
	}
	for suffix, types := range map[string][]string{"_bucket": {"histogram"}, "_sum": {"histogram", "summary"}, "_count": {"histogram", "summary"}} {
		if family, ok := strings.CutSuffix(name, suffix); ok && slices.Contains(types, exported[family]) {
			return true
		}
	}
	return false
}

func newParser() parser.Parser { return parser.NewParser(parser.Options{}) }

// TestQueriesNameExportedMetrics: every rule and every dashboard query
// parses, and names only what the operator exports.
func TestQueriesNameExportedMetrics(t *testing.T) {
	exported := exportedMetrics(t)
	p := newParser()
	groups, _ := ruleGroups(t)
	queries := 0
	for _, g := range groups {
		for _, r := range g.Rules {
			for _, err := range checkQuery(p, exported, r.Expr) {
				t.Errorf("rule %s: %v", r.Alert+r.Record, err)
			}
			queries++
		}
	}
	for title, exprs := range dashboardQueries(readDashboard(t)) {
		for _, expr := range exprs {
			for _, err := range checkQuery(p, exported, expr) {
				t.Errorf("dashboard panel %q: %v", title, err)
			}
			queries++
		}
	}
	if queries < 20 {
		t.Errorf("checked %d queries: the rules and the dashboard were not read right", queries)
	}
}

// TestCheckQueryCatchesWhatIsNotExported: the check above can fail.
func TestCheckQueryCatchesWhatIsNotExported(t *testing.T) {
	t.Parallel()
	exported := map[string]string{
		"aws_auth_guardian_replaces_total":                "counter",
		"aws_auth_guardian_eks_api_call_duration_seconds": "histogram",
		"go_gc_duration_seconds":                          "summary",
	}
	tests := []struct {
		name, query string
		wantErr     string // "" for none
	}{
		{"an exported counter", `rate(aws_auth_guardian_replaces_total[5m])`, ""},
		{"a histogram's buckets", `histogram_quantile(0.9, sum by (le) (rate(aws_auth_guardian_eks_api_call_duration_seconds_bucket[$__rate_interval])))`, ""},
		{"a summary's count", `rate(go_gc_duration_seconds_count[5m])`, ""},
		{"Prometheus's up", `up{job="aws-auth-guardian"} == 0`, ""},
		{"a metric that does not exist", `aws_auth_guardian_replace_total > 0`, "names aws_auth_guardian_replace_total, which the operator does not export"},
		{"one of two that does not exist", `aws_auth_guardian_replaces_total / aws_auth_guardian_nothing`, "names aws_auth_guardian_nothing"},
		{"a summary has no buckets", `go_gc_duration_seconds_bucket`, "names go_gc_duration_seconds_bucket"},
		{"a name by regex", `{__name__=~"aws_auth_guardian_.*"}`, "by a metric name pattern"},
		{"no metric at all", `vector(1)`, "names no metric"},
		{"does not parse", `rate(aws_auth_guardian_replaces_total[5m]`, "does not parse"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			errs := checkQuery(newParser(), exported, tt.query)
			if tt.wantErr == "" {
				if len(errs) > 0 {
					t.Errorf("checkQuery(%q): %v, want no error", tt.query, errs)
				}
				return
			}
			if len(errs) != 1 || !strings.Contains(errs[0].Error(), tt.wantErr) {
				t.Errorf("checkQuery(%q): %v, want one error with %q", tt.query, errs, tt.wantErr)
			}
		})
	}
}
