package awsfake_test

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eks"
	"github.com/aws/aws-sdk-go-v2/service/eks/types"
	"github.com/google/go-cmp/cmp"

	"github.com/aws-auth-guardian/aws-auth-guardian/internal/testing/awsfake"
)

// TestAccessEntryLifecycle walks one entry through every access entry
// operation and checks what the SDK reads back against the fake's own
// record.
func TestAccessEntryLifecycle(t *testing.T) {
	clk := awsfake.NewClock()
	s := newFake(t, awsfake.WithClock(clk.Now))
	c := eksClient(s, noRetries)
	cluster, principal := aws.String(clusterName), aws.String(pathRoleARN)
	created := clk.Now()

	out, err := c.CreateAccessEntry(ctx(t), &eks.CreateAccessEntryInput{
		ClusterName: cluster, PrincipalArn: principal,
		KubernetesGroups: []string{"payments-admins"}, Tags: map[string]string{"owner": "payments"},
	})
	if err != nil {
		t.Fatal(err)
	}
	e := out.AccessEntry
	// A role's generated username is its STS session ARN without the path
	// (https://docs.aws.amazon.com/eks/latest/userguide/creating-access-entries.html).
	if got, want := aws.ToString(e.Username), "arn:aws:sts::"+account+":assumed-role/app/{{SessionName}}"; got != want {
		t.Errorf("username = %q, want %q", got, want)
	}
	if aws.ToString(e.Type) != awsfake.TypeStandard || !e.CreatedAt.Equal(created) || aws.ToString(e.ClusterName) != clusterName {
		t.Errorf("created entry = %+v", e)
	}
	if arn := aws.ToString(e.AccessEntryArn); !strings.HasPrefix(arn, "arn:aws:eks:us-west-2:"+account+":access-entry/dev/role/"+account+"/app/") {
		t.Errorf("access entry ARN = %q", arn)
	}

	clk.Advance(time.Minute)
	upd, err := c.UpdateAccessEntry(ctx(t), &eks.UpdateAccessEntryInput{
		ClusterName: cluster, PrincipalArn: principal, KubernetesGroups: []string{"payments-viewers"}, Username: aws.String("payments:{{SessionName}}"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := upd.AccessEntry; !got.ModifiedAt.Equal(clk.Now()) || !got.CreatedAt.Equal(created) ||
		!slices.Equal(got.KubernetesGroups, []string{"payments-viewers"}) || aws.ToString(got.Username) != "payments:{{SessionName}}" {
		t.Errorf("updated entry = %+v", got)
	}
	// An update that leaves members out keeps them.
	if _, err := c.UpdateAccessEntry(ctx(t), &eks.UpdateAccessEntryInput{ClusterName: cluster, PrincipalArn: principal}); err != nil {
		t.Fatal(err)
	}

	if _, err := c.AssociateAccessPolicy(ctx(t), &eks.AssociateAccessPolicyInput{
		ClusterName: cluster, PrincipalArn: principal, PolicyArn: aws.String(viewPolicy), AccessScope: &clusterScope,
	}); err != nil {
		t.Fatal(err)
	}
	associated := clk.Now()
	clk.Advance(time.Minute)
	// Associating the same policy again changes its scope.
	again, err := c.AssociateAccessPolicy(ctx(t), &eks.AssociateAccessPolicyInput{
		ClusterName: cluster, PrincipalArn: principal, PolicyArn: aws.String(viewPolicy), AccessScope: &nsScope,
	})
	if err != nil {
		t.Fatal(err)
	}
	if p := again.AssociatedAccessPolicy; !p.AssociatedAt.Equal(associated) || !p.ModifiedAt.Equal(clk.Now()) ||
		p.AccessScope.Type != types.AccessScopeTypeNamespace || !slices.Equal(p.AccessScope.Namespaces, nsScope.Namespaces) {
		t.Errorf("re-associated policy = %+v", p)
	}
	adminPolicy := awsfake.PolicyARN("AmazonEKSAdminPolicy")
	if _, err := c.AssociateAccessPolicy(ctx(t), &eks.AssociateAccessPolicyInput{
		ClusterName: cluster, PrincipalArn: principal, PolicyArn: aws.String(adminPolicy), AccessScope: &clusterScope,
	}); err != nil {
		t.Fatal(err)
	}

	want := []awsfake.AccessEntry{{
		PrincipalARN: pathRoleARN, Type: awsfake.TypeStandard, Username: "payments:{{SessionName}}",
		KubernetesGroups: []string{"payments-viewers"}, Tags: map[string]string{"owner": "payments"},
		Policies: []awsfake.AssociatedPolicy{
			{PolicyARN: adminPolicy, Scope: awsfake.AccessScope{Type: awsfake.ScopeCluster}, AssociatedAt: clk.Now(), ModifiedAt: clk.Now()},
			{PolicyARN: viewPolicy, Scope: awsfake.AccessScope{Type: awsfake.ScopeNamespace, Namespaces: nsScope.Namespaces}, AssociatedAt: associated, ModifiedAt: clk.Now()},
		},
		ARN: aws.ToString(e.AccessEntryArn), CreatedAt: created, ModifiedAt: created.Add(time.Minute),
	}}
	snap, err := s.Snapshot(clusterName)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, snap); diff != "" {
		t.Errorf("snapshot (-want +got):\n%s", diff)
	}

	desc, err := c.DescribeAccessEntry(ctx(t), &eks.DescribeAccessEntryInput{ClusterName: cluster, PrincipalArn: principal})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(upd.AccessEntry, desc.AccessEntry, cmp.AllowUnexported(types.AccessEntry{})); diff != "" {
		t.Errorf("described entry differs from the updated one (-update +describe):\n%s", diff)
	}

	listed, err := c.ListAssociatedAccessPolicies(ctx(t), &eks.ListAssociatedAccessPoliciesInput{ClusterName: cluster, PrincipalArn: principal})
	if err != nil {
		t.Fatal(err)
	}
	var listedARNs []string
	for _, p := range listed.AssociatedAccessPolicies {
		listedARNs = append(listedARNs, aws.ToString(p.PolicyArn))
	}
	if !slices.Equal(listedARNs, []string{adminPolicy, viewPolicy}) || aws.ToString(listed.PrincipalArn) != pathRoleARN {
		t.Errorf("associated policies = %v for %s", listedARNs, aws.ToString(listed.PrincipalArn))
	}

	// ListAccessEntries filters by associated policy.
	if _, err := s.SeedEntry(clusterName, awsfake.AccessEntry{PrincipalARN: userARN}); err != nil {
		t.Fatal(err)
	}
	for policy, wantEntries := range map[string][]string{"": {pathRoleARN, userARN}, adminPolicy: {pathRoleARN}} {
		in := &eks.ListAccessEntriesInput{ClusterName: cluster}
		if policy != "" {
			in.AssociatedPolicyArn = aws.String(policy)
		}
		got, err := c.ListAccessEntries(ctx(t), in)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.AccessEntries, wantEntries) {
			t.Errorf("entries with policy %q = %v, want %v", policy, got.AccessEntries, wantEntries)
		}
	}

	if _, err := c.DisassociateAccessPolicy(ctx(t), &eks.DisassociateAccessPolicyInput{ClusterName: cluster, PrincipalArn: principal, PolicyArn: aws.String(adminPolicy)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteAccessEntry(ctx(t), &eks.DeleteAccessEntryInput{ClusterName: cluster, PrincipalArn: principal}); err != nil {
		t.Fatal(err)
	}
	_, err = c.DescribeAccessEntry(ctx(t), &eks.DescribeAccessEntryInput{ClusterName: cluster, PrincipalArn: principal})
	wantCode(t, err, "ResourceNotFoundException", 404)
	if snap, _ := s.Snapshot(clusterName); len(snap) != 1 || snap[0].PrincipalARN != userARN {
		t.Errorf("after delete, snapshot = %+v", snap)
	}
}

// TestDefaultUsernames pins the usernames EKS sets, per the table in
// https://docs.aws.amazon.com/eks/latest/userguide/creating-access-entries.html.
func TestDefaultUsernames(t *testing.T) {
	for _, tc := range []struct {
		principal, typ, want string
	}{
		{userARN, awsfake.TypeStandard, userARN},
		{roleARN, awsfake.TypeStandard, "arn:aws:sts::" + account + ":assumed-role/deployer/{{SessionName}}"},
		{nodeRoleARN, awsfake.TypeEC2Linux, "system:node:{{EC2PrivateDNSName}}"},
		{nodeRoleARN, awsfake.TypeEC2Windows, "system:node:{{EC2PrivateDNSName}}"},
		{nodeRoleARN, awsfake.TypeFargateLinux, "system:node:{{SessionName}}"},
		{nodeRoleARN, awsfake.TypeHybridLinux, "system:node:{{SessionName}}"},
	} {
		t.Run(tc.typ+" "+tc.principal, func(t *testing.T) {
			s := newFake(t)
			out, err := eksClient(s, noRetries).CreateAccessEntry(ctx(t), &eks.CreateAccessEntryInput{
				ClusterName: aws.String(clusterName), PrincipalArn: aws.String(tc.principal), Type: aws.String(tc.typ),
			})
			if err != nil {
				t.Fatal(err)
			}
			if got := aws.ToString(out.AccessEntry.Username); got != tc.want {
				t.Errorf("username = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestListAccessEntriesPagination checks the default page of 100, the
// SDK's paginator, and that a page boundary survives a deletion.
func TestListAccessEntriesPagination(t *testing.T) {
	s := newFake(t)
	c := eksClient(s, noRetries)
	var want []string
	for i := range 250 {
		arn := fmt.Sprintf("arn:aws:iam::%s:role/r%03d", account, i)
		want = append(want, arn)
		if _, err := s.SeedEntry(clusterName, awsfake.AccessEntry{PrincipalARN: arn}); err != nil {
			t.Fatal(err)
		}
	}

	first, err := c.ListAccessEntries(ctx(t), &eks.ListAccessEntriesInput{ClusterName: aws.String(clusterName)})
	if err != nil {
		t.Fatal(err)
	}
	if len(first.AccessEntries) != 100 || first.NextToken == nil {
		t.Fatalf("default page: %d entries, next token %v; want 100 and a token", len(first.AccessEntries), first.NextToken)
	}

	// Someone deletes the last entry of the first page and the first of the
	// second between two calls: nothing still there is skipped or repeated.
	if err := s.DeleteEntry(clusterName, want[99]); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteEntry(clusterName, want[100]); err != nil {
		t.Fatal(err)
	}
	got := slices.Clone(first.AccessEntries)
	p := eks.NewListAccessEntriesPaginator(c, &eks.ListAccessEntriesInput{ClusterName: aws.String(clusterName), NextToken: first.NextToken, MaxResults: aws.Int32(70)})
	pages := 0
	for p.HasMorePages() {
		page, err := p.NextPage(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		pages++
		got = append(got, page.AccessEntries...)
	}
	wantAfter := slices.Concat(want[:100], want[101:])
	if !slices.Equal(got, wantAfter) || pages != 3 {
		t.Errorf("got %d entries in 1+%d pages, want %d in 1+3", len(got), pages, len(wantAfter))
	}
	if got := s.Calls().Total("ListAccessEntries"); got != 4 {
		t.Errorf("ListAccessEntries calls = %d, want 4", got)
	}
}

// TestListAssociatedAccessPoliciesPagination pages through an entry's
// policies one at a time with the SDK's paginator.
func TestListAssociatedAccessPoliciesPagination(t *testing.T) {
	s := newFake(t)
	names := []string{"AmazonEKSAdminPolicy", "AmazonEKSEditPolicy", "AmazonEKSViewPolicy"}
	var policies []awsfake.AssociatedPolicy
	for _, n := range names {
		policies = append(policies, awsfake.AssociatedPolicy{PolicyARN: awsfake.PolicyARN(n), Scope: awsfake.AccessScope{Type: awsfake.ScopeCluster}})
	}
	if _, err := s.SeedEntry(clusterName, awsfake.AccessEntry{PrincipalARN: roleARN, Policies: policies}); err != nil {
		t.Fatal(err)
	}
	p := eks.NewListAssociatedAccessPoliciesPaginator(eksClient(s, noRetries), &eks.ListAssociatedAccessPoliciesInput{
		ClusterName: aws.String(clusterName), PrincipalArn: aws.String(roleARN), MaxResults: aws.Int32(1),
	})
	var got []string
	for p.HasMorePages() {
		page, err := p.NextPage(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		if len(page.AssociatedAccessPolicies) != 1 {
			t.Fatalf("page of %d policies, want 1", len(page.AssociatedAccessPolicies))
		}
		got = append(got, aws.ToString(page.AssociatedAccessPolicies[0].PolicyArn))
	}
	want := []string{awsfake.PolicyARN(names[0]), awsfake.PolicyARN(names[1]), awsfake.PolicyARN(names[2])}
	if !slices.Equal(got, want) {
		t.Errorf("policies = %v, want %v", got, want)
	}
}

// TestListAccessPolicies checks the catalogue and its pagination.
func TestListAccessPolicies(t *testing.T) {
	s := newFake(t)
	p := eks.NewListAccessPoliciesPaginator(eksClient(s, noRetries), &eks.ListAccessPoliciesInput{MaxResults: aws.Int32(2)})
	got := map[string]string{}
	for p.HasMorePages() {
		page, err := p.NextPage(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		if len(page.AccessPolicies) > 2 {
			t.Fatalf("page of %d policies, want at most 2", len(page.AccessPolicies))
		}
		for _, ap := range page.AccessPolicies {
			got[aws.ToString(ap.Name)] = aws.ToString(ap.Arn)
		}
	}
	for _, name := range []string{"AmazonEKSClusterAdminPolicy", "AmazonEKSAdminPolicy", "AmazonEKSEditPolicy", "AmazonEKSViewPolicy"} {
		if got[name] != "arn:aws:eks::aws:cluster-access-policy/"+name {
			t.Errorf("policy %s has ARN %q", name, got[name])
		}
	}
}

// TestClusterConfig checks DescribeCluster, the update UpdateClusterConfig
// answers with, and DescribeUpdate.
func TestClusterConfig(t *testing.T) {
	s := newFake(t)
	c := eksClient(s, noRetries)
	if _, err := s.SeedCluster(awsfake.Cluster{Name: "legacy", AuthenticationMode: awsfake.ModeConfigMap, Version: "1.31"}); err != nil {
		t.Fatal(err)
	}
	desc, err := c.DescribeCluster(ctx(t), &eks.DescribeClusterInput{Name: aws.String("legacy")})
	if err != nil {
		t.Fatal(err)
	}
	if cl := desc.Cluster; aws.ToString(cl.Arn) != "arn:aws:eks:us-west-2:"+account+":cluster/legacy" || aws.ToString(cl.Version) != "1.31" ||
		cl.Status != types.ClusterStatusActive || cl.AccessConfig.AuthenticationMode != types.AuthenticationModeConfigMap {
		t.Errorf("cluster = %+v, access config %+v", cl, cl.AccessConfig)
	}

	up, err := c.UpdateClusterConfig(ctx(t), &eks.UpdateClusterConfigInput{
		Name: aws.String("legacy"), AccessConfig: &types.UpdateAccessConfigRequest{AuthenticationMode: types.AuthenticationModeApiAndConfigMap},
	})
	if err != nil {
		t.Fatal(err)
	}
	u := up.Update
	if u.Status != types.UpdateStatusInProgress || u.Type != types.UpdateTypeAccessConfigUpdate || len(u.Params) != 1 ||
		u.Params[0].Type != types.UpdateParamTypeAuthenticationMode || aws.ToString(u.Params[0].Value) != awsfake.ModeAPIAndConfigMap {
		t.Errorf("update = %+v", u)
	}
	done, err := c.DescribeUpdate(ctx(t), &eks.DescribeUpdateInput{Name: aws.String("legacy"), UpdateId: u.Id})
	if err != nil {
		t.Fatal(err)
	}
	if done.Update.Status != types.UpdateStatusSuccessful {
		t.Errorf("described update status = %s, want Successful", done.Update.Status)
	}
	if got, _ := s.Cluster("legacy"); got.AuthenticationMode != awsfake.ModeAPIAndConfigMap {
		t.Errorf("mode after update = %s", got.AuthenticationMode)
	}

	// The fake handles authentication mode updates only; anything else is
	// refused rather than silently ignored.
	_, err = c.UpdateClusterConfig(ctx(t), &eks.UpdateClusterConfigInput{
		Name: aws.String("legacy"), ResourcesVpcConfig: &types.VpcConfigRequest{EndpointPublicAccess: aws.Bool(false)},
	})
	wantCode(t, err, "InvalidParameterException", 400)
}

// TestTags checks TagResource, UntagResource and ListTagsForResource on an
// access entry and a cluster.
func TestTags(t *testing.T) {
	s := newFake(t)
	c := eksClient(s, noRetries)
	e, err := s.SeedEntry(clusterName, awsfake.AccessEntry{PrincipalARN: roleARN, Tags: map[string]string{"owner": "a"}})
	if err != nil {
		t.Fatal(err)
	}
	cl, _ := s.Cluster(clusterName)
	for _, arn := range []string{e.ARN, cl.ARN} {
		if _, err := c.TagResource(ctx(t), &eks.TagResourceInput{ResourceArn: aws.String(arn), Tags: map[string]string{"owner": "b", "team": "x"}}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.UntagResource(ctx(t), &eks.UntagResourceInput{ResourceArn: aws.String(arn), TagKeys: []string{"team", "absent"}}); err != nil {
			t.Fatal(err)
		}
		got, err := c.ListTagsForResource(ctx(t), &eks.ListTagsForResourceInput{ResourceArn: aws.String(arn)})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(map[string]string{"owner": "b"}, got.Tags); diff != "" {
			t.Errorf("tags of %s (-want +got):\n%s", arn, diff)
		}
	}
	// The aws: prefix is reserved to AWS
	// (https://docs.aws.amazon.com/tag-editor/latest/userguide/tagging.html);
	// TagResource refuses with BadRequestException, its error for a
	// semantic error (https://docs.aws.amazon.com/eks/latest/APIReference/API_TagResource.html).
	_, err = c.TagResource(ctx(t), &eks.TagResourceInput{ResourceArn: aws.String(e.ARN), Tags: map[string]string{"aws:cloudformation:stack": "x"}})
	wantCode(t, err, "BadRequestException", 400)
	if snap, _ := s.Snapshot(clusterName); !cmp.Equal(snap[0].Tags, map[string]string{"owner": "b"}) {
		t.Errorf("a refused TagResource changed the tags: %v", snap[0].Tags)
	}
}

// TestUnsignedRequestsRefused checks that a request without an
// Authorization header is refused in each protocol, while any signature is
// accepted (the SDK-driven tests sign with made-up keys).
func TestUnsignedRequestsRefused(t *testing.T) {
	s := newFake(t)
	client := &http.Client{Timeout: callTimeout}

	resp, err := client.Get(s.URL() + "/clusters/dev")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 || resp.Header.Get("X-Amzn-Errortype") != "MissingAuthenticationTokenException" {
		t.Errorf("EKS: status %d, error type %q", resp.StatusCode, resp.Header.Get("X-Amzn-Errortype"))
	}

	resp, err = client.PostForm(s.URL()+"/", url.Values{"Action": {"GetRole"}, "RoleName": {"deployer"}, "Version": {"2010-05-08"}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 403 || !strings.Contains(string(body), "<Code>MissingAuthenticationToken</Code>") {
		t.Errorf("IAM: status %d, body %s", resp.StatusCode, body)
	}
	if got := s.Calls()["GetRole"]["MissingAuthenticationToken"]; got != 1 {
		t.Errorf("unsigned GetRole counted %d times, want 1", got)
	}
}

// TestUnknownOperation checks that a route the fake does not serve is
// answered, in the protocol of the service, rather than mistaken for
// another.
func TestUnknownOperation(t *testing.T) {
	s := newFake(t)
	c := eksClient(s, noRetries)
	_, err := c.ListNodegroups(ctx(t), &eks.ListNodegroupsInput{ClusterName: aws.String(clusterName)})
	wantCode(t, err, "UnknownOperationException", 404)
	_, err = iamClient(s, noRetries).ListRoles(ctx(t), nil)
	wantCode(t, err, "InvalidAction", 400)
}
