package eksapi

import (
	"errors"
	"strings"
	"testing"

	"github.com/aws-auth-guardian/aws-auth-guardian/internal/testing/awsfake"
)

// The classifiers on the errors the fake answers with, as the real SDK
// client turns them into typed errors.
func TestErrorClassifiers(t *testing.T) {
	t.Parallel()
	s := newFake(t)
	c, reg := newClient(t, s, unlimited)
	if _, err := c.CreateEntry(ctx(t), Entry{PrincipalARN: roleARN}); err != nil {
		t.Fatal(err)
	}

	type class struct{ notFound, conflict, refused bool }
	for _, tc := range []struct {
		name string
		call func() error
		want class
		// The call is one attempt of op, counted under the AWS error code;
		// msg is a part of AWS's message.
		op, code, msg string
	}{{
		name: "describe a missing entry (404)",
		call: func() error { _, err := c.DescribeEntry(ctx(t), userARN); return err },
		want: class{notFound: true}, op: "DescribeAccessEntry", code: "ResourceNotFoundException", msg: "principalArn could not be found",
	}, {
		name: "delete a missing entry (404)",
		call: func() error { return c.DeleteEntry(ctx(t), userARN) },
		want: class{notFound: true}, op: "DeleteAccessEntry", code: "ResourceNotFoundException", msg: "principalArn could not be found",
	}, {
		name: "tag a missing entry (404)",
		call: func() error {
			return c.TagEntry(ctx(t), "arn:aws:eks:us-west-2:"+account+":access-entry/dev/role/"+account+"/x/y", map[string]string{"a": "b"})
		},
		want: class{notFound: true}, op: "TagResource", code: "NotFoundException", msg: "not found",
	}, {
		name: "get a missing IAM role (404)",
		call: func() error { _, err := c.RoleARN(ctx(t), "nobody"); return err },
		want: class{notFound: true}, op: "GetRole", code: "NoSuchEntity", msg: "cannot be found",
	}, {
		name: "create an entry twice (409)",
		call: func() error { _, err := c.CreateEntry(ctx(t), Entry{PrincipalARN: roleARN}); return err },
		want: class{conflict: true}, op: "CreateAccessEntry", code: "ResourceInUseException", msg: "already",
	}, {
		name: "create with a reserved username (400)",
		call: func() error {
			_, err := c.CreateEntry(ctx(t), Entry{PrincipalARN: userARN, Username: "system:alice"})
			return err
		},
		want: class{refused: true}, op: "CreateAccessEntry", code: "InvalidParameterException", msg: "The username system:alice is invalid, it cannot start with system:",
	}, {
		name: "associate with a namespace scope of no namespace (400)",
		call: func() error {
			return c.AssociatePolicy(ctx(t), roleARN, awsfake.PolicyARN("AmazonEKSViewPolicy"), Scope{Type: ScopeNamespace})
		},
		want: class{refused: true}, op: "AssociateAccessPolicy", code: "InvalidParameterException", msg: "needs at least one namespace",
	}, {
		name: "tag with an empty key (400)",
		call: func() error {
			e, err := c.DescribeEntry(ctx(t), roleARN)
			if err != nil {
				return err
			}
			return c.TagEntry(ctx(t), e.ARN, map[string]string{"": "b"})
		},
		want: class{refused: true}, op: "TagResource", code: "BadRequestException",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if err == nil {
				t.Fatal("the call succeeded")
			}
			got := class{IsNotFound(err), IsConflict(err), IsRefused(err)}
			if got != tc.want {
				t.Errorf("IsNotFound, IsConflict, IsRefused = %+v, want %+v; error: %v", got, tc.want, err)
			}
			if !strings.Contains(Message(err), tc.msg) || strings.Contains(Message(err), "RequestID") {
				t.Errorf("Message() = %q, want AWS's message, containing %q", Message(err), tc.msg)
			}
			// The retryer does not retry what cannot succeed.
			if got := attempts(t, reg, tc.op, tc.code); got != 1 {
				t.Errorf("%s %s attempts = %d, want 1", tc.op, tc.code, got)
			}
		})
	}

}

// A cluster at its limit of access entries refuses one more (AWS: 3,000
// per cluster; the fake's limit is lowered here).
func TestLimitIsARefusal(t *testing.T) {
	t.Parallel()
	s := awsfake.New(awsfake.WithMaxAccessEntries(1))
	t.Cleanup(s.Close)
	if _, err := s.SeedCluster(awsfake.Cluster{Name: clusterName}); err != nil {
		t.Fatal(err)
	}
	if err := s.SeedPrincipals(roleARN, userARN); err != nil {
		t.Fatal(err)
	}
	c, _ := newClient(t, s, unlimited)
	if _, err := c.CreateEntry(ctx(t), Entry{PrincipalARN: roleARN}); err != nil {
		t.Fatal(err)
	}
	_, err := c.CreateEntry(ctx(t), Entry{PrincipalARN: userARN})
	if !IsRefused(err) || !IsLimitExceeded(err) || IsConflict(err) || IsNotFound(err) {
		t.Fatalf("the entry over the limit: %v, want a refusal", err)
	}
}

func TestClassifiersOnOtherErrors(t *testing.T) {
	t.Parallel()
	for _, err := range []error{nil, errors.New("boom"), errors.Join(errors.New("a"), errors.New("b"))} {
		if IsNotFound(err) || IsConflict(err) || IsRefused(err) {
			t.Errorf("%v is classified", err)
		}
	}
	if got := Message(errors.New("boom")); got != "boom" {
		t.Errorf("Message(boom) = %q", got)
	}
}
