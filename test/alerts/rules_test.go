package alerts

import (
	"context"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/common/promslog"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/rules"
)

// evalInterval is how often the rules are evaluated, and the step of the
// series below (`load 30s`): Prometheus's default.
const evalInterval = 30 * time.Second

// alertCase holds one alert to series, in promqltest's load notation (one
// sample per 30s from time 0; `_` is no sample; `0+1x4` is 0 1 2 3 4):
// fires must fire it at the time at, quiet must not.
type alertCase struct {
	alert       string
	at          time.Duration
	fires       string
	quiet       string
	firesLabels map[string]string // labels the firing alert must carry
}

var alertCases = []alertCase{{
	alert: "AWSAuthMissing", at: 2 * time.Minute,
	fires: `aws_auth_guardian_aws_auth_present{pod="leader"} 1 1 0 0 0`,
	// The standby never reconciles: its gauge stays 0 while the
	// leader's says 1.
	quiet: `aws_auth_guardian_aws_auth_present{pod="leader"} 1 1 1 1 1
	        aws_auth_guardian_aws_auth_present{pod="standby"} 0 0 0 0 0`,
	firesLabels: map[string]string{"severity": "critical"},
}, {
	alert: "AWSAuthGuardianDown", at: 8 * time.Minute,
	fires: `up{job="aws-auth-guardian",pod="a"} 1 0x16
	        up{job="aws-auth-guardian",pod="b"} 1 0x16`,
	// One replica of two down: the other is up.
	quiet: `up{job="aws-auth-guardian",pod="a"} 1 0x16
	        up{job="aws-auth-guardian",pod="b"} 1x17`,
}, {
	alert: "AWSAuthRenderBlocked", at: 3 * time.Minute,
	fires: `aws_auth_guardian_blocked_applies_total{reason="NodesRemoved"} 0 0 0 1 1 1 1`,
	// A counter whose series first appears at 1 has no increase: which is
	// why the operator exports every reason at 0 from its start.
	quiet:       `aws_auth_guardian_blocked_applies_total{reason="NodesRemoved"} _ _ _ 1 1 1 1`,
	firesLabels: map[string]string{"reason": "NodesRemoved"},
}, {
	alert: "AWSAuthNearSizeLimit", at: time.Minute,
	fires: `aws_auth_guardian_rendered_data_bytes 900000x3`,
	quiet: `aws_auth_guardian_rendered_data_bytes 800000x3`,
}, {
	alert: "AWSAuthProtectionMissing", at: time.Minute,
	fires: `aws_auth_guardian_protection_policy_installed{policy="aws-auth-guardian-protect-aws-auth"} 1 0 0
	        aws_auth_guardian_protection_policy_installed{policy="aws-auth-guardian-protect-crd"} 1 1 1`,
	quiet:       `aws_auth_guardian_protection_policy_installed{policy="aws-auth-guardian-protect-aws-auth"} 1 1 1`,
	firesLabels: map[string]string{"policy": "aws-auth-guardian-protect-aws-auth"},
}, {
	alert: "AWSAuthBackupTampered", at: 2 * time.Minute,
	fires: `aws_auth_guardian_backup_rejected_total 0 0 1 1 1`,
	quiet: `aws_auth_guardian_backup_rejected_total 0x4`,
}, {
	alert: "IAMIdentityMappingNotReady", at: 12 * time.Minute,
	fires: `aws_auth_guardian_mappings{section="mapRoles",ready="True"} 3x24
	        aws_auth_guardian_mappings{section="mapUsers",ready="False"} 1x24`,
	// Not Ready for a few minutes (the access entry being created, say).
	quiet: `aws_auth_guardian_mappings{section="mapRoles",ready="True"} 3x24
	        aws_auth_guardian_mappings{section="mapUsers",ready="False"} 1x10 0x14`,
}, {
	alert: "AccessEntriesBlocked", at: 12 * time.Minute,
	fires: `aws_auth_guardian_access_entry_blocked{pod="leader"} 0 1x23
	        aws_auth_guardian_access_entry_blocked{pod="standby"} 0x24`,
	quiet: `aws_auth_guardian_access_entry_blocked{pod="leader"} 0 1x5 0x18`,
}, {
	alert: "AccessEntryMappingsNeedAction", at: 12 * time.Minute,
	fires: `aws_auth_guardian_access_entries{state="managed"} 5x24
	        aws_auth_guardian_access_entries{state="refused"} 1x24`,
	quiet: `aws_auth_guardian_access_entries{state="managed"} 5x24
	        aws_auth_guardian_access_entries{state="unmanaged"} 2x24
	        aws_auth_guardian_access_entries{state="refused"} 0x24`,
	firesLabels: map[string]string{"state": "refused"},
}, {
	alert: "AccessEntryDriftRestored", at: 2 * time.Minute,
	fires:       `aws_auth_guardian_access_entry_drift_restorations_total{cause="missing"} 0 0 1 1 1`,
	quiet:       `aws_auth_guardian_access_entry_drift_restorations_total{cause="missing"} 0x4`,
	firesLabels: map[string]string{"cause": "missing"},
}, {
	alert: "AccessMissingInAPIMode", at: 12 * time.Minute,
	fires: `aws_auth_guardian_api_mode_blockers{pod="leader"} 2x24
	        aws_auth_guardian_eks_authentication_mode{pod="leader",mode="API"} 1x24`,
	// The same blockers before the switch are what migrate is for.
	quiet: `aws_auth_guardian_api_mode_blockers{pod="leader"} 2x24
	        aws_auth_guardian_eks_authentication_mode{pod="leader",mode="API"} 0x24
	        aws_auth_guardian_eks_authentication_mode{pod="leader",mode="API_AND_CONFIG_MAP"} 1x24`}, {
	alert: "EKSAPIThrottled", at: 5 * time.Minute,
	fires: `aws_auth_guardian_eks_api_calls_total{operation="ListAccessEntries",result="throttled"} 0+3x10
	        aws_auth_guardian_eks_api_calls_total{operation="ListAccessEntries",result="ok"} 0+3x10`,
	// A few throttled calls, which the SDK retries.
	quiet: `aws_auth_guardian_eks_api_calls_total{operation="ListAccessEntries",result="throttled"} 0 0 1 2 2 2 3 3 3 3 3
	        aws_auth_guardian_eks_api_calls_total{operation="ListAccessEntries",result="ok"} 0+3x10`,
}, {
	alert: "EKSAPIErrors", at: 25 * time.Minute,
	fires: `aws_auth_guardian_eks_api_calls_total{operation="CreateAccessEntry",result="AccessDeniedException"} 0+1x50`,
	// Answers about one mapping, on its status, and a short outage.
	quiet: `aws_auth_guardian_eks_api_calls_total{operation="DescribeAccessEntry",result="ResourceNotFoundException"} 0+1x50
	        aws_auth_guardian_eks_api_calls_total{operation="GetRole",result="NoSuchEntity"} 0+1x50
	        aws_auth_guardian_eks_api_calls_total{operation="CreateAccessEntry",result="InvalidParameterException"} 0+1x50
	        aws_auth_guardian_eks_api_calls_total{operation="ListAccessEntries",result="no_response"} 0+1x10 10x40`,
	firesLabels: map[string]string{"operation": "CreateAccessEntry", "result": "AccessDeniedException"},
}}

// firing evaluates every rule of the file over series, every 30s from 0
// to at, as Prometheus would, and returns the alerts named alert that fire
// at the end.
func firing(t *testing.T, rulesPath, series, alert string, at time.Duration) []labels.Labels {
	t.Helper()
	storage := promqltest.LoadedStorage(t, "load 30s\n"+series)
	engine := promqltest.NewTestEngine(t, false, 0, promqltest.DefaultMaxSamplesPerQuery)
	manager := rules.NewManager(&rules.ManagerOptions{
		QueryFunc:    rules.EngineQueryFunc(engine, storage),
		AppendableV2: storage,
		Context:      context.Background(),
		NotifyFunc:   func(context.Context, string, ...*rules.Alert) {},
		Logger:       promslog.NewNopLogger(),
		Parser:       parser.NewParser(parser.Options{}),
	})
	groups, errs := manager.LoadGroups(evalInterval, labels.EmptyLabels(), "", nil, false, rulesPath)
	if len(errs) > 0 {
		t.Fatalf("loading %s: %v", ruleFile, errs)
	}
	start := time.Unix(0, 0).UTC()
	for ts := start; !ts.After(start.Add(at)); ts = ts.Add(evalInterval) {
		for _, g := range groups {
			g.Eval(context.Background(), ts)
			for _, r := range g.Rules() {
				if err := r.LastError(); err != nil {
					t.Fatalf("rule %s at %v: %v", r.Name(), ts.Sub(start), err)
				}
			}
		}
	}
	var out []labels.Labels
	for _, g := range groups {
		for _, r := range g.Rules() {
			ar, ok := r.(*rules.AlertingRule)
			if !ok || ar.Name() != alert {
				continue
			}
			for _, a := range ar.ActiveAlerts() {
				if a.State == rules.StateFiring {
					out = append(out, a.Labels)
				}
			}
		}
	}
	return out
}

func TestAlertRulesFireOnlyWhenTheyShould(t *testing.T) {
	defined := alerts(t)
	_, rulesPath := ruleGroups(t)
	tested := map[string]bool{}
	for _, c := range alertCases {
		tested[c.alert] = true
		if _, ok := defined[c.alert]; !ok {
			t.Errorf("alert %s has a test but no rule in %s", c.alert, ruleFile)
			continue
		}
		t.Run(c.alert, func(t *testing.T) {
			t.Parallel()
			got := firing(t, rulesPath, c.fires, c.alert, c.at)
			if len(got) != 1 {
				t.Errorf("on the series that must fire it, %s fires %d alerts at %v, want 1:\n%s", c.alert, len(got), c.at, c.fires)
			}
			for _, l := range got {
				for name, value := range c.firesLabels {
					if l.Get(name) != value {
						t.Errorf("%s fires with %s, want %s=%q", c.alert, l, name, value)
					}
				}
			}
			if got := firing(t, rulesPath, c.quiet, c.alert, c.at); len(got) != 0 {
				t.Errorf("on the series that must not fire it, %s fires at %v: %v\n%s", c.alert, c.at, got, c.quiet)
			}
		})
	}
	for _, name := range slices.Sorted(maps.Keys(defined)) {
		if !tested[name] {
			t.Errorf("alert %s of %s has no test: add series that fire it and series that must not", name, ruleFile)
		}
	}
}

// TestAlertRulesSayWhatToDo: each alert has a severity and a summary, so
// that the notification a person gets says what broke.
func TestAlertRulesSayWhatToDo(t *testing.T) {
	for name, r := range alerts(t) {
		if name == "" {
			t.Errorf("a rule of %s is not an alert (%q): the file holds alerts only", ruleFile, r.Expr)
			continue
		}
		if !slices.Contains([]string{"critical", "warning", "info"}, r.Labels["severity"]) {
			t.Errorf("alert %s: severity %q, want critical, warning or info", name, r.Labels["severity"])
		}
		if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
			t.Errorf("alert %s needs a summary and a description", name)
		}
	}
}
