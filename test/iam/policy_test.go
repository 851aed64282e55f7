// Package iam holds config/iam/policy.json, the IAM policy the README
// gives the operator, to the calls internal/eksapi makes: every call is
// allowed, on the cluster named and nothing wider, and nothing else is.
package iam

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/aws-auth-guardian/aws-auth-guardian/internal/accessentry"
)

// Example ARNs of the resource types the actions take, in the policy's
// placeholders (ACCOUNT_ID, REGION, CLUSTER_NAME), as the Service
// Authorization Reference writes them: access-entry is
// arn:${Partition}:eks:${Region}:${Account}:access-entry/${ClusterName}/${IamIdentityType}/${IamIdentityAccountID}/${IamIdentityName}/${UUID}.
const (
	clusterARN     = "arn:aws:eks:REGION:ACCOUNT_ID:cluster/CLUSTER_NAME"
	accessEntryARN = "arn:aws:eks:REGION:ACCOUNT_ID:access-entry/CLUSTER_NAME/role/ACCOUNT_ID/admins/0ec6b4d2-1b2a-7c3e-9f10-3a4b5c6d7e8f"
	roleARN        = "arn:aws:iam::ACCOUNT_ID:role/teams/admins"
	// Of another cluster of the account: nothing may reach it.
	otherClusterARN     = "arn:aws:eks:REGION:ACCOUNT_ID:cluster/CLUSTER_NAME-other"
	otherAccessEntryARN = "arn:aws:eks:REGION:ACCOUNT_ID:access-entry/CLUSTER_NAME-other/role/ACCOUNT_ID/admins/0ec6b4d2-1b2a-7c3e-9f10-3a4b5c6d7e8f"
)

// resourceOf is the resource each IAM action is authorized on, from
// "Actions, resources, and condition keys for Amazon Elastic Kubernetes
// Service" (and for IAM) of the Service Authorization Reference: the
// access entry operations take access-entry (required), ListAccessEntries,
// DescribeCluster and CreateAccessEntry take cluster, GetRole and PassRole
// take role. TagResource and UntagResource take the resource tagged, here
// an access entry.
var resourceOf = map[string]string{
	"eks:DescribeCluster":              clusterARN,
	"eks:ListAccessEntries":            clusterARN,
	"eks:CreateAccessEntry":            clusterARN,
	"eks:DescribeAccessEntry":          accessEntryARN,
	"eks:ListAssociatedAccessPolicies": accessEntryARN,
	"eks:UpdateAccessEntry":            accessEntryARN,
	"eks:DeleteAccessEntry":            accessEntryARN,
	"eks:AssociateAccessPolicy":        accessEntryARN,
	"eks:DisassociateAccessPolicy":     accessEntryARN,
	"eks:TagResource":                  accessEntryARN,
	"eks:UntagResource":                accessEntryARN,
	"iam:GetRole":                      roleARN,
	"iam:PassRole":                     roleARN,
}

// dependentActions are the actions the reference's table of API operations
// lists for an operation besides its own: CreateAccessEntry authorizes
// eks:TagResource (the operator creates every entry with its tag) and
// iam:PassRole with iam:PassedToService ec2.amazonaws.com (node entries).
var dependentActions = map[string][]string{
	"eks:CreateAccessEntry": {"eks:TagResource", "iam:PassRole"},
}

// onOwnEntries are the actions the operator runs only on entries tagged as
// its own (accessentry.Plan never updates, deletes, or changes the
// policies of an entry without MappingTag): the policy allows them on such
// entries alone. Adopting an untagged entry is TagResource alone.
var onOwnEntries = []string{"eks:AssociateAccessPolicy", "eks:DeleteAccessEntry", "eks:DisassociateAccessPolicy", "eks:UpdateAccessEntry"}

// calledActions are the IAM actions of the EKS and IAM operations the
// eksapi package calls, read from its source: c.eks.Op(...), c.iam.Op(...)
// and the SDK's paginators, eks.NewOpPaginator(...).
func calledActions(t *testing.T) []string {
	t.Helper()
	dir := filepath.Join("..", "..", "internal", "eksapi")
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	fset := token.NewFileSet()
	for _, file := range files {
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, file, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			switch x := sel.X.(type) {
			case *ast.SelectorExpr: // c.eks.DescribeCluster
				if x.Sel.Name == "eks" || x.Sel.Name == "iam" {
					found[x.Sel.Name+":"+sel.Sel.Name] = true
				}
			case *ast.Ident: // eks.NewListAccessEntriesPaginator
				op, ok := strings.CutPrefix(sel.Sel.Name, "New")
				if op, paginator := strings.CutSuffix(op, "Paginator"); ok && paginator && (x.Name == "eks" || x.Name == "iam") {
					found[x.Name+":"+op] = true
				}
			}
			return true
		})
	}
	if len(found) < 5 {
		t.Fatalf("found only %v in %s: the calls were not read right", slices.Sorted(maps.Keys(found)), dir)
	}
	return slices.Sorted(maps.Keys(found))
}

type statement struct {
	Sid         string
	Effect      string
	Action      stringList
	Resource    stringList
	NotAction   any
	NotResource any
	Condition   map[string]map[string]stringList
}

// stringList is a policy element that is one string or a list of them.
type stringList []string

func (s *stringList) UnmarshalJSON(data []byte) error {
	var one string
	if err := json.Unmarshal(data, &one); err == nil {
		*s = stringList{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(data, &many); err != nil {
		return err
	}
	*s = many
	return nil
}

func readPolicy(t *testing.T) []statement {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "config", "iam", "policy.json"))
	if err != nil {
		t.Fatal(err)
	}
	var policy struct {
		Version   string
		Statement []statement
	}
	if err := json.Unmarshal(data, &policy); err != nil {
		t.Fatalf("config/iam/policy.json: %v", err)
	}
	if policy.Version != "2012-10-17" {
		t.Errorf("Version is %q, not 2012-10-17 (the one that has policy variables)", policy.Version)
	}
	if len(policy.Statement) == 0 {
		t.Fatal("config/iam/policy.json has no statement")
	}
	return policy.Statement
}

// matches says whether an ARN pattern of the policy, with IAM's wildcards
// (* any run of characters, ? one), covers arn.
func matches(pattern, arn string) bool {
	re := "^" + strings.NewReplacer(`\*`, ".*", `\?`, ".").Replace(regexp.QuoteMeta(pattern)) + "$"
	return regexp.MustCompile(re).MatchString(arn)
}

func TestThePolicyAllowsEveryCallOfTheOperatorAndNothingElse(t *testing.T) {
	statements := readPolicy(t)
	called := calledActions(t)
	t.Logf("internal/eksapi calls %v", called)
	needed := map[string]bool{}
	for _, a := range called {
		needed[a] = true
		for _, d := range dependentActions[a] {
			needed[d] = true
		}
	}

	for _, st := range statements {
		if st.Effect != "Allow" || st.NotAction != nil || st.NotResource != nil {
			t.Errorf("statement %s: only Allow with Action and Resource, no NotAction nor NotResource", st.Sid)
		}
		for _, a := range st.Action {
			if strings.ContainsAny(a, "*?") {
				t.Errorf("statement %s allows %q: name each action", st.Sid, a)
			}
			if !needed[a] {
				t.Errorf("statement %s allows %s, which the operator does not call", st.Sid, a)
			}
		}
		for _, r := range st.Resource {
			// Every action here takes a resource type, so none needs "*".
			if r == "*" || matches(r, otherClusterARN) || matches(r, otherAccessEntryARN) {
				t.Errorf("statement %s reaches beyond the cluster CLUSTER_NAME: %s", st.Sid, r)
			}
		}
	}

	for _, action := range slices.Sorted(maps.Keys(needed)) {
		arn, ok := resourceOf[action]
		if !ok {
			t.Errorf("the operator calls %s: add the resource type the Service Authorization Reference gives it to resourceOf, and allow it in config/iam/policy.json", action)
			continue
		}
		allowed := slices.ContainsFunc(statements, func(st statement) bool {
			return slices.Contains(st.Action, action) && slices.ContainsFunc(st.Resource, func(r string) bool { return matches(r, arn) })
		})
		if !allowed {
			t.Errorf("no statement allows %s on %s", action, arn)
		}
	}
}

// TestThePolicyKeepsTheOperatorToItsOwnEntries: the operator may write only
// its own tags, only create entries carrying it, and change only entries
// that carry it (accessentry.MappingTag), so that a bug cannot touch the
// creator's entry or anyone else's.
func TestThePolicyKeepsTheOperatorToItsOwnEntries(t *testing.T) {
	statements := readPolicy(t)
	of := func(action string) []statement {
		var out []statement
		for _, st := range statements {
			if slices.Contains(st.Action, action) {
				out = append(out, st)
			}
		}
		if len(out) == 0 {
			t.Errorf("no statement allows %s", action)
		}
		return out
	}
	// Created entries carry the mapping tag alone; adoption adds the
	// adopted tag, and releasing an adopted entry removes both.
	ourTags := map[string]stringList{
		"eks:CreateAccessEntry": {accessentry.MappingTag},
		"eks:TagResource":       {accessentry.MappingTag, accessentry.AdoptedTag},
		"eks:UntagResource":     {accessentry.MappingTag, accessentry.AdoptedTag},
	}
	for _, action := range slices.Sorted(maps.Keys(ourTags)) {
		for _, st := range of(action) {
			if got := st.Condition["ForAllValues:StringEquals"]["aws:TagKeys"]; !slices.Equal(got, ourTags[action]) {
				t.Errorf("statement %s allows %s with the tag keys %v; only %v", st.Sid, action, got, ourTags[action])
			}
		}
	}
	// Only an entry the operator adopted is released: one it made is
	// deleted, and one of someone else's is never touched.
	for _, st := range of("eks:UntagResource") {
		if got := st.Condition["Null"]["aws:ResourceTag/"+accessentry.AdoptedTag]; !slices.Equal(got, stringList{"false"}) {
			t.Errorf("statement %s allows untagging an access entry without the tag %s", st.Sid, accessentry.AdoptedTag)
		}
	}
	for _, st := range of("eks:CreateAccessEntry") {
		if got := st.Condition["Null"]["aws:RequestTag/"+accessentry.MappingTag]; !slices.Equal(got, stringList{"false"}) {
			t.Errorf("statement %s allows creating an access entry without the tag %s", st.Sid, accessentry.MappingTag)
		}
	}
	for _, action := range onOwnEntries {
		for _, st := range of(action) {
			if got := st.Condition["Null"]["aws:ResourceTag/"+accessentry.MappingTag]; !slices.Equal(got, stringList{"false"}) {
				t.Errorf("statement %s allows %s on an access entry without the tag %s", st.Sid, action, accessentry.MappingTag)
			}
		}
	}
	for _, st := range of("iam:PassRole") {
		if got := st.Condition["StringEquals"]["iam:PassedToService"]; !slices.Equal(got, stringList{"ec2.amazonaws.com"}) {
			t.Errorf("statement %s passes roles to %v; only to ec2.amazonaws.com, for node access entries", st.Sid, got)
		}
	}
}
