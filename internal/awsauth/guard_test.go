package awsauth_test

import (
	"fmt"
	"testing"

	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
)

func TestCheckRemovals(t *testing.T) {
	t.Parallel()
	node := awsauth.Entry{Section: awsauth.MapRoles, Identity: "arn:aws:iam::111122223333:role/nodes", Username: "system:node:{{EC2PrivateDNSName}}", Groups: []string{"system:bootstrappers", "system:nodes"}}
	otherNode := awsauth.Entry{Section: awsauth.MapRoles, Identity: "arn:aws:iam::111122223333:role/nodes-2", Username: "system:node:{{EC2PrivateDNSName}}", Groups: []string{"system:nodes"}}
	admin := awsauth.Entry{Section: awsauth.MapRoles, Identity: "arn:aws:iam::111122223333:role/admin", Username: "admin", Groups: []string{"system:masters"}}
	users := make([]awsauth.Entry, 10)
	for i := range users {
		users[i] = awsauth.Entry{Section: awsauth.MapUsers, Identity: fmt.Sprintf("arn:aws:iam::111122223333:user/u%d", i), Username: fmt.Sprintf("u%d", i)}
	}
	tests := []struct {
		name          string
		live, desired []awsauth.Entry
		want          string // "" for allowed
	}{
		{"first render over nothing", nil, []awsauth.Entry{admin}, ""},
		{"empty over nothing", nil, nil, ""},
		{"empty over entries", []awsauth.Entry{admin}, nil, awsauth.RefusedEmpty},
		{"last node role removed", []awsauth.Entry{node, admin}, []awsauth.Entry{admin}, awsauth.RefusedNodes},
		{"node role group dropped", []awsauth.Entry{node, admin}, []awsauth.Entry{{Section: node.Section, Identity: node.Identity, Username: node.Username, Groups: []string{"system:bootstrappers"}}, admin}, awsauth.RefusedNodes},
		{"one of two node roles removed", []awsauth.Entry{node, otherNode, admin}, []awsauth.Entry{otherNode, admin}, ""},
		{"node role replaced by another", []awsauth.Entry{node, admin}, []awsauth.Entry{otherNode, admin}, ""},
		{"two of four removed, below the guard's minimum", users[:4], users[:2], ""},
		{"half of ten removed", users, users[:5], ""},
		{"six of ten removed", users, users[:4], awsauth.RefusedTooManyRemoved},
		{"ARN case change is not a removal", users[:6], func() []awsauth.Entry {
			changed := append([]awsauth.Entry(nil), users[:6]...)
			for i := range changed {
				changed[i].Identity = "arn:aws:iam::111122223333:user/U" + changed[i].Identity[len(changed[i].Identity)-1:]
			}
			return changed
		}(), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := awsauth.CheckRemovals(tc.live, tc.desired, 0.5)
			switch {
			case tc.want == "" && got != nil:
				t.Errorf("refused (%s: %s), want allowed", got.Reason, got.Message)
			case tc.want != "" && got == nil:
				t.Errorf("allowed, want refused with %s", tc.want)
			case got != nil && got.Reason != tc.want:
				t.Errorf("refused with %s, want %s", got.Reason, tc.want)
			}
		})
	}
}
