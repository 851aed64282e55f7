package awsfake_test

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eks"

	"github.com/aws-auth-guardian/aws-auth-guardian/internal/testing/awsfake"
)

// A test seeds a cluster and the IAM role, points the real EKS client at
// the fake, and reads back both the API's answer and the fake's counters.
func Example() {
	s := awsfake.New()
	defer s.Close()
	if _, err := s.SeedCluster(awsfake.Cluster{Name: "dev"}); err != nil {
		panic(err)
	}
	role := "arn:aws:iam::" + awsfake.DefaultAccountID + ":role/teams/deployer"
	if err := s.SeedPrincipals(role); err != nil {
		panic(err)
	}

	client := eks.NewFromConfig(awsConfig(noRetries), func(o *eks.Options) { o.BaseEndpoint = aws.String(s.URL()) })
	out, err := client.CreateAccessEntry(context.Background(), &eks.CreateAccessEntryInput{
		ClusterName:      aws.String("dev"),
		PrincipalArn:     aws.String(role),
		KubernetesGroups: []string{"system:masters"},
	})
	fmt.Println(out == nil, err != nil)

	s.SetFault("ListAccessEntries", awsfake.Fault{ThrottleRate: 1})
	_, err = client.ListAccessEntries(context.Background(), &eks.ListAccessEntriesInput{ClusterName: aws.String("dev")})
	code, status := errorCode(err)
	fmt.Println(code, status)
	fmt.Println(s.Calls())
	// Output:
	// true true
	// ThrottlingException 429
	// map[CreateAccessEntry:map[InvalidParameterException:1] ListAccessEntries:map[ThrottlingException:1]]
}
