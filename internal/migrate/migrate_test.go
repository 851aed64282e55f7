package migrate_test

import (
	"strings"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/accessentry"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/migrate"
)

func cluster(entries ...accessentry.Observed) *migrate.Cluster {
	return &migrate.Cluster{Mode: "API_AND_CONFIG_MAP", Entries: entries}
}

// Every row of the README's translation table ("Access entries", "The
// translation"): what the identity becomes, that the entry it becomes is
// found equal when EKS holds it, and that without it API mode is blocked.
func TestTranslationTable(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		mapping *iamv1alpha1.IAMIdentityMapping
		want    iamv1alpha1.AccessEntryStatus
		// held is the entry EKS holds when it is equal: EKS returns groups
		// and namespaces in no set order.
		held accessentry.Observed
	}{
		{"a role with a path: the ARN as written",
			mapping("deployer", withARN(pathRole), withUsername("deployer"), withGroups("deploy")),
			iamv1alpha1.AccessEntryStatus{PrincipalARN: pathRole, Type: "STANDARD", Username: "deployer", KubernetesGroups: []string{"deploy"}},
			entry(pathRole, "STANDARD", user("deployer", "deploy"))},
		{"a user: the ARN as written",
			mapping("jane", withARN(userARN), withUsername("jane")),
			iamv1alpha1.AccessEntryStatus{PrincipalARN: userARN, Type: "STANDARD", Username: "jane"},
			entry(userARN, "STANDARD", user("jane"))},
		{"a role without a path: the ARN IAM holds, path and case included",
			mapping("admins", withARN(adminsRole), withUsername("admin"), withGroups("ops")),
			iamv1alpha1.AccessEntryStatus{PrincipalARN: adminsWithPath, Type: "STANDARD", Username: "admin", KubernetesGroups: []string{"ops"}},
			entry(adminsWithPath, "STANDARD", user("admin", "ops"))},
		{"username and groups: sorted, without repeats, {{AccountID}} expanded",
			mapping("dev", withARN(pathRole), withUsername("dev:{{AccountID}}:{{SessionName}}"), withGroups("viewers", "editors-{{AccountID}}", "viewers")),
			iamv1alpha1.AccessEntryStatus{PrincipalARN: pathRole, Type: "STANDARD", Username: "dev:" + acct + ":{{SessionName}}", KubernetesGroups: []string{"editors-" + acct, "viewers"}},
			entry(pathRole, "STANDARD", user("dev:"+acct+":{{SessionName}}", "viewers", "editors-"+acct))},
		{"system:masters: without the group, with AmazonEKSClusterAdminPolicy on the cluster",
			mapping("root", withARN(pathRole), withUsername("root"), withGroups("system:masters", "ops")),
			iamv1alpha1.AccessEntryStatus{PrincipalARN: pathRole, Type: "STANDARD", Username: "root", KubernetesGroups: []string{"ops"},
				Policies: []iamv1alpha1.AccessPolicyStatus{{PolicyARN: clusterAdminARN, Scope: "cluster"}}},
			entry(pathRole, "STANDARD", user("root", "ops"), policies(accessentry.Policy{ARN: clusterAdminARN}))},
		{"the EC2 node form: EC2_LINUX",
			mapping("nodes", withARN(nodeRole), withUsername(ec2Node), withGroups("system:bootstrappers", "system:nodes")),
			iamv1alpha1.AccessEntryStatus{PrincipalARN: nodeRole, Type: "EC2_LINUX"},
			// EKS gives a node entry its own username and groups.
			entry(nodeRole, "EC2_LINUX", user("system:node:{{EC2PrivateDNSName}}", "system:nodes"))},
		{"the EC2 node form with eks:kube-proxy-windows: EC2_WINDOWS",
			mapping("windows", withARN(nodeRole), withUsername(ec2Node), withGroups("system:bootstrappers", "system:nodes", "eks:kube-proxy-windows")),
			iamv1alpha1.AccessEntryStatus{PrincipalARN: nodeRole, Type: "EC2_WINDOWS"},
			entry(nodeRole, "EC2_WINDOWS")},
		{"the session node form with system:node-proxier: FARGATE_LINUX",
			mapping("fargate", withARN(nodeRole), withUsername(sessionNode), withGroups("system:bootstrappers", "system:nodes", "system:node-proxier")),
			iamv1alpha1.AccessEntryStatus{PrincipalARN: nodeRole, Type: "FARGATE_LINUX"},
			entry(nodeRole, "FARGATE_LINUX")},
		{"spec.accessEntryType: HYBRID_LINUX for the session node form",
			mapping("hybrid", withARN(nodeRole), withUsername(sessionNode), withGroups("system:nodes"), withType("HYBRID_LINUX")),
			iamv1alpha1.AccessEntryStatus{PrincipalARN: nodeRole, Type: "HYBRID_LINUX"},
			entry(nodeRole, "HYBRID_LINUX")},
		{"spec.accessEntryType: EC2_WINDOWS for the EC2 node form",
			mapping("windows", withARN(nodeRole), withUsername(ec2Node), withGroups("system:nodes"), withType("EC2_WINDOWS")),
			iamv1alpha1.AccessEntryStatus{PrincipalARN: nodeRole, Type: "EC2_WINDOWS"},
			entry(nodeRole, "EC2_WINDOWS")},
		{"spec.accessPolicies: by name or ARN, on the cluster or on namespaces",
			mapping("viewer", withARN(pathRole), withUsername("viewer"), withPolicy("AmazonEKSViewPolicy", "team-b", "dev-*"), withPolicy(clusterAdminARN)),
			iamv1alpha1.AccessEntryStatus{PrincipalARN: pathRole, Type: "STANDARD", Username: "viewer", Policies: []iamv1alpha1.AccessPolicyStatus{
				{PolicyARN: clusterAdminARN, Scope: "cluster"}, {PolicyARN: viewARN, Scope: "namespace", Namespaces: []string{"dev-*", "team-b"}}}},
			entry(pathRole, "STANDARD", user("viewer"), policies(
				accessentry.Policy{ARN: viewARN, Namespaces: []string{"team-b", "dev-*"}}, accessentry.Policy{ARN: clusterAdminARN}))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := migrate.Analyze(migrate.Input{Mappings: grants(iam, tc.mapping), Cluster: cluster(creator, tc.held)})
			row := onlyRow(t, got)
			if diff := gocmp.Diff(&tc.want, row.Becomes); diff != "" {
				t.Errorf("becomes (-want +got):\n%s", diff)
			}
			if row.Existing != migrate.ExistingEqual || row.Blocks || got.Verdict != migrate.VerdictReady {
				t.Errorf("with the entry held: existing %q, blocks %t, verdict %q (%s); want equal, not blocking, ready", row.Existing, row.Blocks, got.Verdict, row.Why)
			}

			without := migrate.Analyze(migrate.Input{Mappings: grants(iam, tc.mapping), Cluster: cluster(creator)})
			row = onlyRow(t, without)
			if row.Existing != migrate.ExistingNone || !row.Blocks || without.Verdict != migrate.VerdictBlocked {
				t.Errorf("without the entry: existing %q, blocks %t, verdict %q; want none, blocking, blocked", row.Existing, row.Blocks, without.Verdict)
			}
		})
	}
}

// What aws-auth holds and no access entry can say (README, after the
// translation table): each is an identity that cannot move, named by its
// rule, and blocks API mode, even with an entry of its principal.
func TestNotRepresentableBlocks(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		mapping *iamv1alpha1.IAMIdentityMapping
		rule    string
		node    bool
	}{
		{"an accountID mapping", mapping("acct", withAccount("444455556666")), accessentry.RuleAccount, false},
		{"a system: group other than system:masters", mapping("boot", withARN(pathRole), withUsername("boot"), withGroups("system:bootstrappers")), accessentry.RuleSystemGroup, false},
		{"system:nodes outside the node forms", mapping("n", withARN(pathRole), withUsername("ci"), withGroups("system:nodes")), accessentry.RuleSystemGroup, true},
		{"a reserved username", mapping("eks", withARN(pathRole), withUsername("eks:deployer")), accessentry.RuleReservedUsername, false},
		{"a node username with accessEntryType STANDARD", mapping("std", withARN(nodeRole), withUsername(ec2Node), withGroups("system:nodes"), withType("STANDARD")), accessentry.RuleReservedUsername, true},
		{"{{AccessKeyID}} in a username", mapping("key", withARN(userARN), withUsername("u:{{AccessKeyID}}")), accessentry.RuleUsernameTemplate, false},
		{"{{EC2PrivateDNSName}} outside the node form", mapping("dns", withARN(pathRole), withUsername("x:{{EC2PrivateDNSName}}")), accessentry.RuleUsernameTemplate, false},
		{"a template in a group", mapping("tg", withARN(pathRole), withUsername("tg"), withGroups("team-{{SessionName}}")), accessentry.RuleGroupTemplate, false},
		// aws-auth itself refuses {{EC2PrivateDNSName}} for a user.
		{"the node form on a user", mapping("un", withARN(userARN), withUsername(sessionNode), withGroups("system:nodes")), accessentry.RuleNodeNeedsRole, true},
		{"the node form with other groups", mapping("ng", withARN(nodeRole), withUsername(ec2Node), withGroups("system:nodes", "ops")), accessentry.RuleNodeGroups, true},
		{"access policies on a node entry", mapping("np", withARN(nodeRole), withUsername(ec2Node), withGroups("system:nodes"), withPolicy("AmazonEKSViewPolicy")), accessentry.RuleNodePolicies, true},
		{"system:masters with the admin policy on namespaces", mapping("mn", withARN(pathRole), withUsername("a"), withGroups("system:masters"), withPolicy("AmazonEKSClusterAdminPolicy", "dev")), accessentry.RuleMastersScope, false},
		{"a service-linked role", mapping("slr", withARN("arn:aws:iam::"+acct+":role/aws-service-role/eks.amazonaws.com/AWSServiceRoleForAmazonEKS"), withUsername("slr")), accessentry.RuleServiceLinkedRole, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			entries := []accessentry.Observed{creator}
			if tc.mapping.Spec.ARN != "" {
				// An entry someone made by hand does not make it move.
				entries = append(entries, entry(tc.mapping.Spec.ARN, "STANDARD", user("by-hand")))
			}
			for _, c := range []*migrate.Cluster{cluster(creator), cluster(entries...), nil} {
				got := migrate.Analyze(migrate.Input{Mappings: grants(iam, tc.mapping), Cluster: c})
				row := onlyRow(t, got)
				if !strings.HasPrefix(row.CannotMove, tc.rule) || !row.Blocks || row.Becomes != nil || !strings.Contains(row.Why, tc.rule) {
					t.Errorf("cannotMove %q, blocks %t, becomes %v, why %q; want the rule %q, blocking, no entry", row.CannotMove, row.Blocks, row.Becomes, row.Why, tc.rule)
				}
				wantKind := migrate.BlockIdentity
				if tc.node {
					wantKind = migrate.BlockNode
				}
				if got.Verdict != migrate.VerdictBlocked || len(got.Blockers) != 1 || got.Blockers[0].Kind != wantKind || got.Blockers[0].Mapping != tc.mapping.Name {
					t.Errorf("verdict %q, blockers %+v; want blocked by the %s %s alone", got.Verdict, got.Blockers, wantKind, tc.mapping.Name)
				}
			}
		})
	}
}

// Each blocker, and what does not block.
func TestBlockers(t *testing.T) {
	t.Parallel()
	admins := mapping("admins", withARN(pathRole), withUsername("admin"), withGroups("ops", "dev"), withPolicy("AmazonEKSViewPolicy"))
	nodes := mapping("nodes", withARN(nodeRole), withUsername(ec2Node), withGroups("system:bootstrappers", "system:nodes"))
	equalAdmins := entry(pathRole, "STANDARD", user("admin", "dev", "ops"), policies(accessentry.Policy{ARN: viewARN}))
	type want struct {
		existing string
		differs  []string
		blockers []string // kind/mapping
		verdict  string
		why      string
	}
	cases := []struct {
		name       string
		mappings   []*iamv1alpha1.IAMIdentityMapping
		roles      migrate.Roles
		unreadable []string
		cluster    *migrate.Cluster
		want       want
	}{
		{"ready: the entry is equal and the creator is cluster admin",
			[]*iamv1alpha1.IAMIdentityMapping{admins}, iam, nil, cluster(creator, equalAdmins),
			want{existing: migrate.ExistingEqual, verdict: migrate.VerdictReady, why: "API mode changes nothing"}},
		{"no entry", []*iamv1alpha1.IAMIdentityMapping{admins}, iam, nil, cluster(creator),
			want{existing: migrate.ExistingNone, blockers: []string{"identity/admins"}, verdict: migrate.VerdictBlocked, why: "would lose the access aws-auth gives it"}},
		{"the username differs", []*iamv1alpha1.IAMIdentityMapping{admins}, iam, nil,
			cluster(creator, entry(pathRole, "STANDARD", user("root", "dev", "ops"), policies(accessentry.Policy{ARN: viewARN}))),
			want{existing: migrate.ExistingDiffers, differs: []string{"username"}, blockers: []string{"identity/admins"}, verdict: migrate.VerdictBlocked, why: "differs in username"}},
		{"the groups differ", []*iamv1alpha1.IAMIdentityMapping{admins}, iam, nil,
			cluster(creator, entry(pathRole, "STANDARD", user("admin", "ops"), policies(accessentry.Policy{ARN: viewARN}))),
			want{existing: migrate.ExistingDiffers, differs: []string{"groups"}, blockers: []string{"identity/admins"}, verdict: migrate.VerdictBlocked}},
		{"a policy's scope differs", []*iamv1alpha1.IAMIdentityMapping{admins}, iam, nil,
			cluster(creator, entry(pathRole, "STANDARD", user("admin", "dev", "ops"), policies(accessentry.Policy{ARN: viewARN, Namespaces: []string{"dev"}}))),
			want{existing: migrate.ExistingDiffers, differs: []string{"policies"}, blockers: []string{"identity/admins"}, verdict: migrate.VerdictBlocked}},
		{"an extra policy", []*iamv1alpha1.IAMIdentityMapping{admins}, iam, nil,
			cluster(creator, entry(pathRole, "STANDARD", user("admin", "dev", "ops"), policies(accessentry.Policy{ARN: viewARN}, accessentry.Policy{ARN: clusterAdminARN}))),
			want{existing: migrate.ExistingDiffers, differs: []string{"policies"}, blockers: []string{"identity/admins"}, verdict: migrate.VerdictBlocked}},
		{"the type differs", []*iamv1alpha1.IAMIdentityMapping{admins}, iam, nil,
			cluster(creator, entry(pathRole, "EC2_LINUX")),
			want{existing: migrate.ExistingDiffers, differs: []string{"type"}, blockers: []string{"identity/admins"}, verdict: migrate.VerdictBlocked}},
		{"a node role without a node entry", []*iamv1alpha1.IAMIdentityMapping{nodes}, iam, nil, cluster(creator),
			want{existing: migrate.ExistingNone, blockers: []string{"node/nodes"}, verdict: migrate.VerdictBlocked, why: "nodes could not join"}},
		{"a node role whose entry is STANDARD", []*iamv1alpha1.IAMIdentityMapping{nodes}, iam, nil, cluster(creator, entry(nodeRole, "STANDARD", user("x"))),
			want{existing: migrate.ExistingDiffers, differs: []string{"type"}, blockers: []string{"node/nodes"}, verdict: migrate.VerdictBlocked, why: "is STANDARD, not EC2_LINUX"}},
		{"a node role whose entry is EC2_WINDOWS", []*iamv1alpha1.IAMIdentityMapping{nodes}, iam, nil, cluster(creator, entry(nodeRole, "EC2_WINDOWS")),
			want{existing: migrate.ExistingDiffers, differs: []string{"type"}, blockers: []string{"node/nodes"}, verdict: migrate.VerdictBlocked}},
		{"no cluster admin left: the creator's entry is gone", []*iamv1alpha1.IAMIdentityMapping{admins}, iam, nil, cluster(equalAdmins),
			want{existing: migrate.ExistingEqual, blockers: []string{"clusterAdmin/"}, verdict: migrate.VerdictBlocked}},
		{"no cluster admin left: the admin policy is on namespaces only", []*iamv1alpha1.IAMIdentityMapping{admins}, iam, nil,
			cluster(equalAdmins, entry(creatorRole, "STANDARD", user("c"), policies(accessentry.Policy{ARN: clusterAdminARN, Namespaces: []string{"kube-system"}}))),
			want{existing: migrate.ExistingEqual, blockers: []string{"clusterAdmin/"}, verdict: migrate.VerdictBlocked}},
		{"the cluster admin is an entry of the operator's", []*iamv1alpha1.IAMIdentityMapping{admins}, iam, nil,
			cluster(equalAdmins, entry(creatorRole, "STANDARD", user("c"), taggedFor("break-glass"), policies(accessentry.Policy{ARN: clusterAdminARN}))),
			want{existing: migrate.ExistingEqual, verdict: migrate.VerdictReady}},
		{"what aws-auth holds but cannot be read as a mapping", []*iamv1alpha1.IAMIdentityMapping{admins}, iam, []string{"mapRoles item 3 sets userid."}, cluster(creator, equalAdmins),
			want{existing: migrate.ExistingEqual, blockers: []string{"unreadable/"}, verdict: migrate.VerdictBlocked}},
		{"IAM cannot be asked for the role's path", []*iamv1alpha1.IAMIdentityMapping{mapping("r", withARN(adminsRole), withUsername("a"))}, roles{failing: true}, nil, cluster(creator),
			want{existing: migrate.ExistingUnknown, blockers: []string{"identity/r"}, verdict: migrate.VerdictBlocked, why: "could not be checked: getting IAM role admins: throttled"}},
		{"IAM has no such role: aws-auth grants it nothing today", []*iamv1alpha1.IAMIdentityMapping{mapping("gone", withARN("arn:aws:iam::"+acct+":role/gone"), withUsername("g"))}, iam, nil, cluster(creator),
			want{existing: migrate.ExistingNone, verdict: migrate.VerdictReady, why: "IAM has no role gone"}},
		{"CONFIG_MAP: the cluster holds no entries", []*iamv1alpha1.IAMIdentityMapping{admins}, iam, nil, &migrate.Cluster{Mode: "CONFIG_MAP"},
			want{existing: migrate.ExistingNone, blockers: []string{"identity/admins", "clusterAdmin/"}, verdict: migrate.VerdictBlocked}},
		{"not checked: it can move", []*iamv1alpha1.IAMIdentityMapping{admins}, nil, nil, nil,
			want{existing: migrate.ExistingNotChecked, verdict: migrate.VerdictNotChecked, why: "entries were not read"}},
		{"not checked: what cannot be read blocks still", []*iamv1alpha1.IAMIdentityMapping{admins}, nil, []string{"mapUsers is not valid YAML."}, nil,
			want{existing: migrate.ExistingNotChecked, blockers: []string{"unreadable/"}, verdict: migrate.VerdictBlocked}},
		{"a mapping aws-auth does not hold grants nothing: shadowed by an older one",
			[]*iamv1alpha1.IAMIdentityMapping{admins, mapping("younger", withARN(pathRole), withUsername("other"), createdAt(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)))}, iam, nil, cluster(creator, equalAdmins),
			want{existing: migrate.ExistingEqual, verdict: migrate.VerdictReady}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := migrate.Analyze(migrate.Input{Mappings: grants(tc.roles, tc.mappings...), Unreadable: tc.unreadable, Cluster: tc.cluster})
			row := onlyRow(t, got)
			var blockers []string
			for _, b := range got.Blockers {
				blockers = append(blockers, b.Kind+"/"+b.Mapping)
				if b.Why == "" {
					t.Errorf("blocker %+v says not why", b)
				}
			}
			gotWant := want{existing: row.Existing, differs: row.Differs, blockers: blockers, verdict: got.Verdict, why: tc.want.why}
			if diff := gocmp.Diff(tc.want, gotWant, gocmp.AllowUnexported(want{})); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if !strings.Contains(row.Why, tc.want.why) {
				t.Errorf("why = %q, want it to say %q", row.Why, tc.want.why)
			}
		})
	}
}

// An entry that no identity of aws-auth names is shown, and blocks nothing.
func TestOtherEntries(t *testing.T) {
	t.Parallel()
	ours := entry(userARN, "STANDARD", user("jane"), taggedFor("jane"))
	got := migrate.Analyze(migrate.Input{Cluster: cluster(ours, creator)})
	want := []migrate.OtherEntry{
		{Entry: creator.Entry.Status()},
		{Entry: ours.Entry.Status(), OwnedBy: "jane"},
	}
	if diff := gocmp.Diff(want, got.OtherEntries); diff != "" {
		t.Errorf("other entries (-want +got):\n%s", diff)
	}
	if got.Verdict != migrate.VerdictReady || got.AccessEntries != 2 {
		t.Errorf("verdict %q with %d entries, want ready with 2", got.Verdict, got.AccessEntries)
	}
}

func onlyRow(t *testing.T, r migrate.Report) migrate.Row {
	t.Helper()
	if len(r.Identities) != 1 {
		t.Fatalf("%d rows, want 1: %+v", len(r.Identities), r.Identities)
	}
	return r.Identities[0]
}
