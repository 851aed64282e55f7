package awsauth_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
)

func TestCanonicalARN(t *testing.T) {
	t.Parallel()
	type tc struct {
		name        string
		arn         string
		want        string
		wantSection awsauth.Section
		// wantErr lists what the message must tell the person; every error
		// must also quote the ARN it refuses.
		wantErr []string
	}
	tests := []tc{
		{name: "plain role", arn: "arn:aws:iam::111122223333:role/admins", want: "arn:aws:iam::111122223333:role/admins", wantSection: awsauth.MapRoles},
		{name: "role path stripped", arn: "arn:aws:iam::111122223333:role/team/platform/admins", want: "arn:aws:iam::111122223333:role/admins", wantSection: awsauth.MapRoles},
		{name: "sso role path stripped", arn: "arn:aws:iam::111122223333:role/aws-reserved/sso.amazonaws.com/eu-west-1/AWSReservedSSO_Admin_0123456789abcdef", want: "arn:aws:iam::111122223333:role/AWSReservedSSO_Admin_0123456789abcdef", wantSection: awsauth.MapRoles},
		{name: "role name with every allowed punctuation", arn: "arn:aws:iam::111122223333:role/a+b=c,d.e@f_g-h", want: "arn:aws:iam::111122223333:role/a+b=c,d.e@f_g-h", wantSection: awsauth.MapRoles},
		{name: "role name keeps its case", arn: "arn:aws:iam::111122223333:role/Admins", want: "arn:aws:iam::111122223333:role/Admins", wantSection: awsauth.MapRoles},
		{name: "plain user", arn: "arn:aws:iam::111122223333:user/alice", want: "arn:aws:iam::111122223333:user/alice", wantSection: awsauth.MapUsers},
		{name: "user keeps path", arn: "arn:aws:iam::111122223333:user/engineering/alice", want: "arn:aws:iam::111122223333:user/engineering/alice", wantSection: awsauth.MapUsers},
		{name: "role name of 64 characters", arn: roleARN("111122223333", strings.Repeat("r", 64)), want: roleARN("111122223333", strings.Repeat("r", 64)), wantSection: awsauth.MapRoles},

		{name: "role name of 65 characters", arn: roleARN("111122223333", strings.Repeat("r", 65)), wantErr: []string{"64"}},
		{name: "user name of 65 characters", arn: userARN("111122223333", strings.Repeat("u", 65)), wantErr: []string{"64"}},
		{name: "unknown partition", arn: "arn:aws-mars:iam::111122223333:role/admins", wantErr: []string{`"aws-mars"`, "aws-us-gov"}},
		{name: "partition in upper case", arn: "arn:AWS:iam::111122223333:role/admins", wantErr: []string{`"AWS"`}},
		{name: "11-digit account", arn: "arn:aws:iam::11112222333:role/admins", wantErr: []string{`"11112222333"`, "12 digits"}},
		{name: "13-digit account", arn: "arn:aws:iam::1111222233334:role/admins", wantErr: []string{`"1111222233334"`, "12 digits"}},
		{name: "account with letters", arn: "arn:aws:iam::11112222333a:role/admins", wantErr: []string{`"11112222333a"`}},
		{name: "rol/ typo", arn: "arn:aws:iam::111122223333:rol/admins", wantErr: []string{"rol/admins", "role/<name>"}},
		{name: "group ARN", arn: "arn:aws:iam::111122223333:group/devs", wantErr: []string{"group/devs", "user/<name>"}},
		{name: "instance profile ARN", arn: "arn:aws:iam::111122223333:instance-profile/nodes", wantErr: []string{"instance-profile/nodes"}},
		{name: "sts assumed-role", arn: "arn:aws:sts::111122223333:assumed-role/Admin/alice@example.com", wantErr: []string{"arn:aws:iam::111122223333:role/Admin", "assumed-role"}},
		{name: "sts assumed-role in aws-cn", arn: "arn:aws-cn:sts::111122223333:assumed-role/eks-nodes/i-0123456789abcdef0", wantErr: []string{"arn:aws-cn:iam::111122223333:role/eks-nodes"}},
		{name: "sts assumed-role in aws-us-gov", arn: "arn:aws-us-gov:sts::444455556666:assumed-role/ops/botocore-session-1", wantErr: []string{"arn:aws-us-gov:iam::444455556666:role/ops"}},
		{name: "not an IAM service", arn: "arn:aws:ec2::111122223333:role/admins", wantErr: []string{"IAM"}},
		{name: "region set on IAM", arn: "arn:aws:iam:us-east-1:111122223333:role/admins", wantErr: []string{"IAM"}},
		{name: "not an ARN", arn: "admins", wantErr: []string{"must start with arn:"}},
		{name: "empty", arn: "", wantErr: []string{"must start with arn:"}},
		{name: "empty role name", arn: "arn:aws:iam::111122223333:role/", wantErr: []string{"name"}},
		{name: "trailing slash", arn: "arn:aws:iam::111122223333:role/team/", wantErr: []string{"name"}},
		{name: "space in name", arn: "arn:aws:iam::111122223333:role/my admins", wantErr: []string{"name"}},
		{name: "leading space", arn: " arn:aws:iam::111122223333:role/admins"},
		{name: "trailing newline", arn: "arn:aws:iam::111122223333:role/admins\n"},
		{name: "wildcard", arn: "arn:aws:iam::111122223333:role/*"},
	}
	for _, p := range []string{"aws", "aws-cn", "aws-us-gov", "aws-iso", "aws-iso-b", "aws-iso-e", "aws-iso-f", "aws-eusc"} {
		tests = append(tests,
			tc{name: "partition " + p + " role", arn: "arn:" + p + ":iam::111122223333:role/path/nodes", want: "arn:" + p + ":iam::111122223333:role/nodes", wantSection: awsauth.MapRoles},
			tc{name: "partition " + p + " user", arn: "arn:" + p + ":iam::111122223333:user/path/bob", want: "arn:" + p + ":iam::111122223333:user/path/bob", wantSection: awsauth.MapUsers},
		)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, section, err := awsauth.CanonicalARN(tt.arn)
			if tt.want == "" {
				requireErrorContains(t, err, append([]string{strconv.Quote(tt.arn)}, tt.wantErr...)...)
				if got != "" || section != "" {
					t.Errorf("got %q, %q with the error, want nothing", got, section)
				}
				return
			}
			if err != nil {
				t.Fatalf("CanonicalARN(%q): %v", tt.arn, err)
			}
			if got != tt.want || section != tt.wantSection {
				t.Errorf("CanonicalARN(%q) = %q, %q; want %q, %q", tt.arn, got, section, tt.want, tt.wantSection)
			}
		})
	}
}

func TestValidAccountID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		id    string
		valid bool
	}{
		{name: "12 digits", id: "111122223333", valid: true},
		{name: "leading zeros", id: "000011112222", valid: true},
		{name: "11 digits", id: "11112222333"},
		{name: "13 digits", id: "1111222233334"},
		{name: "letters", id: "11112222333a"},
		{name: "dashes", id: "1111-2222-3333"},
		{name: "empty", id: ""},
		{name: "space", id: "111122223333 "},
		{name: "unicode digits", id: "١١١١٢٢٢٢٣٣٣٣"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := awsauth.ValidAccountID(tt.id)
			if tt.valid {
				if err != nil {
					t.Errorf("ValidAccountID(%q): %v", tt.id, err)
				}
				return
			}
			requireErrorContains(t, err, tt.id, "12 digits")
		})
	}
}
