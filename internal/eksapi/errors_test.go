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

	type class struct{ notFound, conflict, invalid bool }
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
		want: class{invalid: true}, op: "CreateAccessEntry", code: "InvalidParameterException", msg: "The username system:alice is invalid, it cannot start with system:",
	}, {
		name: "associate with a namespace scope of no namespace (400)",
		call: func() error {
			return c.AssociatePolicy(ctx(t), roleARN, awsfake.PolicyARN("AmazonEKSViewPolicy"), Scope{Type: ScopeNamespace})
		},
		want: class{invalid: true}, op: "AssociateAccessPolicy", code: "InvalidParameterException", msg: "needs at least one namespace",
	}, {
		name: "tag with an empty key (400)",
		call: func() error {
			e, err := c.DescribeEntry(ctx(t), roleARN)
			if err != nil {
				return err
			}
			return c.TagEntry(ctx(t), e.ARN, map[string]string{"": "b"})
		},
		want: class{invalid: true}, op: "TagResource", code: "BadRequestException",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if err == nil {
				t.Fatal("the call succeeded")
			}
			got := class{IsNotFound(err), IsConflict(err), IsInvalid(err)}
			if got != tc.want {
				t.Errorf("IsNotFound, IsConflict, IsInvalid = %+v, want %+v; error: %v", got, tc.want, err)
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

func TestClassifiersOnOtherErrors(t *testing.T) {
	t.Parallel()
	for _, err := range []error{nil, errors.New("boom"), errors.Join(errors.New("a"), errors.New("b"))} {
		if IsNotFound(err) || IsConflict(err) || IsInvalid(err) {
			t.Errorf("%v is classified", err)
		}
	}
	if got := Message(errors.New("boom")); got != "boom" {
		t.Errorf("Message(boom) = %q", got)
	}
}
