// Package oracle checks renders against the EKS authenticator's own parser; it is its own module so that aws-iam-authenticator and the AWS SDK it pulls in stay out of the operator's dependency graph.
package oracle
