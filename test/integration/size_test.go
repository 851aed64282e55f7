package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/managed"
)

// bigMapping is as large as the schema allows: a user ARN of 2048
// characters (a user keeps its path), the longest username and 16 groups of
// 128 characters. Names of one length give entries of one size.
func bigMapping(i int) *iamv1alpha1.IAMIdentityMapping {
	name := fmt.Sprintf("big-%03d", i)
	prefix := "arn:aws:iam::111122223333:user/"
	path := strings.Repeat("p/", (2048-len(prefix)-len(name))/2)
	groups := make([]string, awsauth.MaxGroups)
	for g := range groups {
		groups[g] = fmt.Sprintf("%02d", g) + strings.Repeat("g", awsauth.MaxGroupLength-2)
	}
	return mapping(name, withARN(prefix+path+name), withUsername(strings.Repeat("u", awsauth.MaxUsernameLength)), withGroups(groups...))
}

func entryOfMapping(t *testing.T, m *iamv1alpha1.IAMIdentityMapping) awsauth.Entry {
	t.Helper()
	e, err := managed.MappingInput(m).Entry()
	if err != nil {
		t.Fatalf("%s: %v", m.Name, err)
	}
	return e
}

func TestMappingsTooLargeHoldBackOnlyThemselves(t *testing.T) {
	startWithMappings(t, managed.Immutable)
	g := NewWithT(t)
	ctx := context.Background()

	// How many big entries fit next to the base ones, by Render itself.
	one, err := awsauth.Render([]awsauth.Entry{entryOfMapping(t, bigMapping(0))})
	g.Expect(err).NotTo(HaveOccurred())
	fits := func(n int) bool {
		entries := append([]awsauth.Entry(nil), baseEntries...)
		for i := range n {
			entries = append(entries, entryOfMapping(t, bigMapping(i)))
		}
		_, err := awsauth.Render(entries)
		return err == nil
	}
	kept := awsauth.MaxDataBytes / awsauth.DataSize(one.Data)
	for !fits(kept) {
		kept--
	}
	g.Expect(fits(kept + 1)).To(BeFalse())
	total := kept + 3
	t.Logf("big entries of %d bytes: %d of %d fit", awsauth.DataSize(one.Data), kept, total)

	// Created oldest first, so that those that fit are the first by name.
	for i := range total {
		create(t, bigMapping(i))
	}
	expectFit := func(first, last int) {
		g.Eventually(func(g Gomega) {
			live := getAWSAuth(g)
			g.Expect(awsauth.DataSize(live.Data)).To(BeNumerically("<=", awsauth.MaxDataBytes))
			entries := liveEntries(g)
			g.Expect(entries).To(ContainElements(baseEntries))
			want := map[string]bool{}
			for i := first; i < last; i++ {
				want[entryOfMapping(t, bigMapping(i)).Identity] = true
			}
			got := map[string]bool{}
			for _, e := range entries {
				if strings.Contains(e.Identity, ":user/p/") {
					got[e.Identity] = true
				}
			}
			g.Expect(got).To(Equal(want))
			expectReady(g, "nodes", "admins", "jane", "partner", fmt.Sprintf("big-%03d", first), fmt.Sprintf("big-%03d", last-1))
			for i := last; i < total; i++ {
				c := readyCondition(g, fmt.Sprintf("big-%03d", i))
				g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
				g.Expect(c.Reason).To(Equal(iamv1alpha1.ReasonTooLarge))
				g.Expect(c.Message).To(And(
					ContainSubstring(fmt.Sprintf("The entry is %d bytes", awsauth.DataSize(one.Data)-len(awsauth.MapUsers))),
					ContainSubstring(fmt.Sprintf("of the %d bytes a ConfigMap may hold", awsauth.MaxDataBytes)),
					ContainSubstring("Shorten its groups or username, or delete other mappings")))
			}
		}).WithTimeout(timeout).WithPolling(100 * time.Millisecond).Should(Succeed())
	}
	expectFit(0, kept)

	// A revocation of an applied mapping reaches aws-auth although others
	// are too large; the room it frees goes to the oldest left out.
	g.Expect(k.Delete(ctx, bigMapping(0))).To(Succeed())
	expectFit(1, kept+1)
}
