// Package oracle checks renders against the EKS authenticator's own code: its aws-auth parser, and its webhook server (token verification, the EKSConfigMap mapper, template expansion) run in-process with AWS answered locally. It is its own module so that aws-iam-authenticator and the AWS SDK it pulls in stay out of the operator's dependency graph.
package oracle
