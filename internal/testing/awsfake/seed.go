package awsfake

import (
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strings"
)

// This file is the Go side of the fake: tests seed state, read it back and
// change it as someone else would (another operator, a person in the
// console), without going over HTTP. Changes obey the same rules as the
// API, so that a test cannot build a state AWS would refuse; the errors
// are *APIError.

// clusterName is the CreateCluster name constraint.
var clusterName = regexp.MustCompile(`^[0-9A-Za-z][A-Za-z0-9\-_]{0,99}$`)

// SeedCluster adds a cluster, defaulting AuthenticationMode to
// ModeAPIAndConfigMap and Version to "1.33", and returns it with its ARN.
func (s *Server) SeedCluster(c Cluster) (Cluster, error) {
	if !clusterName.MatchString(c.Name) {
		return Cluster{}, invalidParameter("The cluster name %q is invalid", c.Name)
	}
	if c.AuthenticationMode == "" {
		c.AuthenticationMode = ModeAPIAndConfigMap
	}
	if !validMode(c.AuthenticationMode) {
		return Cluster{}, invalidParameter("The authentication mode %q is invalid", c.AuthenticationMode)
	}
	if c.Version == "" {
		c.Version = "1.33"
	}
	if err := checkTags(c.Tags, invalidParameter); err != nil {
		return Cluster{}, err
	}
	c.Tags = cloneTags(c.Tags)
	c.ARN = "arn:aws:eks:" + s.cfg.region + ":" + s.cfg.accountID + ":cluster/" + c.Name
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.clusters[c.Name]; dup {
		return Cluster{}, resourceInUse("Cluster already exists with name: %s", c.Name)
	}
	s.clusters[c.Name] = &cluster{Cluster: c, createdAt: s.cfg.now(), entries: map[string]*entry{}, updates: map[string]update{}}
	return c, nil
}

// SeedPrincipals adds IAM roles and users, by ARN, path included. They are
// what GetRole and GetUser answer for (those of the fake's own account),
// and CreateAccessEntry refuses a principal the fake's IAM does not know.
// Roles of other accounts can be seeded for cross-account entries.
func (s *Server) SeedPrincipals(arns ...string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, arn := range arns {
		p, ok := parseIAMARN(arn)
		if !ok {
			return validationError("%s is not the ARN of an IAM role or user", arn)
		}
		if _, dup := s.principals[arn]; dup {
			return newError(http.StatusConflict, "EntityAlreadyExists", "%s already exists", arn)
		}
		prefix := "AROA"
		if p.kind == "user" {
			prefix = "AIDA"
		}
		id := prefix + strings.ToUpper(strings.ReplaceAll(newID(), "-", ""))[:17]
		s.principals[arn] = principal{arn: p, id: id, createdAt: s.cfg.now()}
	}
	return nil
}

// DeletePrincipal removes an IAM role or user, as someone deleting it in
// IAM would. Access entries naming it stay, as they do in EKS.
func (s *Server) DeletePrincipal(arn string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.principals[arn]; !ok {
		return noSuchEntity("%s cannot be found.", arn)
	}
	delete(s.principals, arn)
	return nil
}

// SeedEntry adds an access entry with its policies, checked as
// CreateAccessEntry and AssociateAccessPolicy check them, except that the
// principal need not exist in the fake's IAM (an entry outlives its
// principal). It is visible at once, whatever the visibility delay.
func (s *Server) SeedEntry(clusterName string, e AccessEntry) (AccessEntry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.entriesCluster(clusterName)
	if err != nil {
		return AccessEntry{}, err
	}
	policies := e.Policies
	e.Policies = nil
	created, err := s.newEntry(c, e, false)
	if err != nil {
		return AccessEntry{}, err
	}
	for _, p := range policies {
		if _, dup := created.policy(p.PolicyARN); dup {
			return AccessEntry{}, invalidParameter("The policy %s is listed twice", p.PolicyARN)
		}
		if _, err := s.associate(created, p.PolicyARN, p.Scope); err != nil {
			return AccessEntry{}, err
		}
	}
	c.entries[created.PrincipalARN] = created
	return copyEntry(created.AccessEntry), nil
}

// Snapshot returns the access entries of a cluster with their policies and
// tags, sorted by principal ARN, including those the visibility delay still
// hides from the API.
func (s *Server) Snapshot(clusterName string) ([]AccessEntry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.cluster(clusterName)
	if err != nil {
		return nil, err
	}
	return s.snapshot(c), nil
}

// snapshot is Snapshot of c; mu is held.
func (s *Server) snapshot(c *cluster) []AccessEntry {
	out := make([]AccessEntry, 0, len(c.entries))
	for _, e := range c.sortedEntries() {
		out = append(out, copyEntry(e.AccessEntry))
	}
	return out
}

// Cluster returns a cluster as the fake holds it.
func (s *Server) Cluster(name string) (Cluster, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.cluster(name)
	if err != nil {
		return Cluster{}, err
	}
	out := c.Cluster
	out.Tags = cloneTags(out.Tags)
	return out, nil
}

// SetAuthenticationMode changes a cluster's authentication mode as someone
// else would, under the same one-way rule as UpdateClusterConfig.
func (s *Server) SetAuthenticationMode(clusterName, mode string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.cluster(clusterName)
	if err != nil {
		return err
	}
	if err := checkModeChange(c.AuthenticationMode, mode); err != nil {
		return err
	}
	c.AuthenticationMode = mode
	return nil
}

// DeleteEntry deletes an access entry as someone else would.
func (s *Server) DeleteEntry(clusterName, principalARN string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.entriesCluster(clusterName)
	if err != nil {
		return err
	}
	if _, err := s.entry(c, principalARN, false); err != nil {
		return err
	}
	delete(c.entries, principalARN)
	return nil
}

// ModifyEntry changes an access entry as someone else would: change gets a
// copy to edit, and the result is checked against the rules of
// UpdateAccessEntry, AssociateAccessPolicy and TagResource before it
// replaces the entry. The principal, type, ARN and creation time cannot
// change. ModifiedAt is set to now, and so are the timestamps of policies
// added or rescoped.
func (s *Server) ModifyEntry(clusterName, principalARN string, change func(*AccessEntry)) (AccessEntry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.entriesCluster(clusterName)
	if err != nil {
		return AccessEntry{}, err
	}
	old, err := s.entry(c, principalARN, false)
	if err != nil {
		return AccessEntry{}, err
	}
	next := copyEntry(old.AccessEntry)
	change(&next)
	if next.PrincipalARN != old.PrincipalARN || next.Type != old.Type || next.ARN != old.ARN || !next.CreatedAt.Equal(old.CreatedAt) {
		return AccessEntry{}, invalidParameter("The principal, type, ARN and creation time of an access entry cannot change")
	}
	if err := s.checkModified(old, &next); err != nil {
		return AccessEntry{}, err
	}
	next.ModifiedAt = s.cfg.now()
	next.KubernetesGroups = nonNil(next.KubernetesGroups)
	next.Tags = cloneTags(next.Tags)
	next.Policies, err = s.rePolicies(old, next.Policies)
	if err != nil {
		return AccessEntry{}, err
	}
	old.AccessEntry = next
	return copyEntry(next), nil
}

func (s *Server) checkModified(old *entry, next *AccessEntry) *APIError {
	if next.Type != TypeStandard && (len(next.KubernetesGroups) > 0 || next.Username != old.Username) {
		return invalidParameter(msgOnlyStandard)
	}
	if err := checkGroups(next.KubernetesGroups); err != nil {
		return err
	}
	if next.Username == "" {
		return invalidParameter("The username of an access entry cannot be empty")
	}
	if next.Username != old.Username {
		if err := checkUsername(next.Username); err != nil {
			return err
		}
	}
	return checkTags(next.Tags, badRequest)
}

// rePolicies checks a changed list of policies and stamps it: a policy
// kept as it was keeps its timestamps, a rescoped one its AssociatedAt.
func (s *Server) rePolicies(old *entry, policies []AssociatedPolicy) ([]AssociatedPolicy, *APIError) {
	scratch := &entry{AccessEntry: AccessEntry{Type: old.Type}}
	for _, p := range policies {
		if _, dup := scratch.policy(p.PolicyARN); dup {
			return nil, invalidParameter("The policy %s is listed twice", p.PolicyARN)
		}
		added, err := s.associate(scratch, p.PolicyARN, p.Scope)
		if err != nil {
			return nil, err
		}
		i, _ := scratch.policy(added.PolicyARN)
		if j, had := old.policy(p.PolicyARN); had {
			prev := old.Policies[j]
			scratch.Policies[i].AssociatedAt = prev.AssociatedAt
			if prev.Scope.Type == p.Scope.Type && slices.Equal(prev.Scope.Namespaces, p.Scope.Namespaces) {
				scratch.Policies[i].ModifiedAt = prev.ModifiedAt
			}
		}
	}
	return scratch.Policies, nil
}

// cloneTags copies a tag map, making an absent one empty, as EKS answers
// "{}" rather than leaving tags out.
func cloneTags(tags map[string]string) map[string]string {
	out := make(map[string]string, len(tags))
	maps.Copy(out, tags)
	return out
}
