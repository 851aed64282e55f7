package awsfake

import (
	"encoding/base64"
	"encoding/json"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// eksRoute maps a method and a path pattern, with {label} segments, to an
// operation. The patterns are the request URIs of the EKS service model, as
// the SDK's serializers build them.
type eksRoute struct {
	method  string
	pattern string
	name    string
	serve   func(*Server, *request) (any, *APIError)
}

var eksRoutes = []eksRoute{
	{http.MethodGet, "/clusters/{name}", "DescribeCluster", (*Server).describeCluster},
	{http.MethodPost, "/clusters/{name}/update-config", "UpdateClusterConfig", (*Server).updateClusterConfig},
	{http.MethodGet, "/clusters/{name}/updates/{updateId}", "DescribeUpdate", (*Server).describeUpdate},
	{http.MethodGet, "/clusters/{name}/access-entries", "ListAccessEntries", (*Server).listAccessEntries},
	{http.MethodPost, "/clusters/{name}/access-entries", "CreateAccessEntry", (*Server).createAccessEntry},
	{http.MethodGet, "/clusters/{name}/access-entries/{principalArn}", "DescribeAccessEntry", (*Server).describeAccessEntry},
	{http.MethodPost, "/clusters/{name}/access-entries/{principalArn}", "UpdateAccessEntry", (*Server).updateAccessEntry},
	{http.MethodDelete, "/clusters/{name}/access-entries/{principalArn}", "DeleteAccessEntry", (*Server).deleteAccessEntry},
	{http.MethodPost, "/clusters/{name}/access-entries/{principalArn}/access-policies", "AssociateAccessPolicy", (*Server).associateAccessPolicy},
	{http.MethodGet, "/clusters/{name}/access-entries/{principalArn}/access-policies", "ListAssociatedAccessPolicies", (*Server).listAssociatedAccessPolicies},
	{http.MethodDelete, "/clusters/{name}/access-entries/{principalArn}/access-policies/{policyArn}", "DisassociateAccessPolicy", (*Server).disassociateAccessPolicy},
	{http.MethodGet, "/access-policies", "ListAccessPolicies", (*Server).listAccessPolicies},
	{http.MethodGet, "/tags/{resourceArn}", "ListTagsForResource", (*Server).listTagsForResource},
	{http.MethodPost, "/tags/{resourceArn}", "TagResource", (*Server).tagResource},
	{http.MethodDelete, "/tags/{resourceArn}", "UntagResource", (*Server).untagResource},
}

// routeEKS matches the escaped path segment by segment: a principal ARN
// travels as one label with its slashes escaped, so the path must be split
// before it is unescaped.
func (s *Server) routeEKS(req *request) (operation, *request, *APIError) {
	segments := strings.Split(strings.TrimPrefix(req.req.URL.EscapedPath(), "/"), "/")
	for _, rt := range eksRoutes {
		if rt.method != req.req.Method {
			continue
		}
		labels, ok := matchPath(strings.Split(strings.TrimPrefix(rt.pattern, "/"), "/"), segments)
		if !ok {
			continue
		}
		req.labels = labels
		return operation{name: rt.name, serve: func(r *request) (any, *APIError) { return rt.serve(s, r) }}, req, nil
	}
	return operation{name: "Unknown"}, req, newError(http.StatusNotFound, "UnknownOperationException",
		"awsfake serves no EKS operation at %s %s", req.req.Method, req.req.URL.Path)
}

func matchPath(pattern, segments []string) (map[string]string, bool) {
	if len(pattern) != len(segments) {
		return nil, false
	}
	labels := map[string]string{}
	for i, p := range pattern {
		if name, ok := strings.CutPrefix(p, "{"); ok {
			v, err := url.PathUnescape(segments[i])
			if err != nil || v == "" {
				return nil, false
			}
			labels[strings.TrimSuffix(name, "}")] = v
			continue
		}
		if p != segments[i] {
			return nil, false
		}
	}
	return labels, true
}

// decode reads a JSON request body; an empty body is an empty input.
func decode(r *request, v any) *APIError {
	if len(r.body) == 0 {
		return nil
	}
	if err := json.Unmarshal(r.body, v); err != nil {
		return newError(http.StatusBadRequest, "SerializationException", "The request body is not valid JSON: %v", err)
	}
	return nil
}

// The JSON shapes of the answers, with the member names of the EKS model.

type clusterJSON struct {
	Name         string            `json:"name"`
	ARN          string            `json:"arn"`
	Version      string            `json:"version"`
	Status       string            `json:"status"`
	CreatedAt    epoch             `json:"createdAt"`
	AccessConfig accessConfigJSON  `json:"accessConfig"`
	Tags         map[string]string `json:"tags"`
}

type accessConfigJSON struct {
	AuthenticationMode string `json:"authenticationMode"`
}

type updateJSON struct {
	ID        string            `json:"id"`
	Status    string            `json:"status"`
	Type      string            `json:"type"`
	Params    []updateParamJSON `json:"params"`
	CreatedAt epoch             `json:"createdAt"`
	Errors    []struct{}        `json:"errors"`
}

type updateParamJSON struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

type accessEntryJSON struct {
	ClusterName      string            `json:"clusterName"`
	PrincipalARN     string            `json:"principalArn"`
	KubernetesGroups []string          `json:"kubernetesGroups"`
	AccessEntryARN   string            `json:"accessEntryArn"`
	CreatedAt        epoch             `json:"createdAt"`
	ModifiedAt       epoch             `json:"modifiedAt"`
	Tags             map[string]string `json:"tags"`
	Username         string            `json:"username"`
	Type             string            `json:"type"`
}

type accessScopeJSON struct {
	Type       string   `json:"type"`
	Namespaces []string `json:"namespaces"`
}

type associatedPolicyJSON struct {
	PolicyARN    string          `json:"policyArn"`
	AccessScope  accessScopeJSON `json:"accessScope"`
	AssociatedAt epoch           `json:"associatedAt"`
	ModifiedAt   epoch           `json:"modifiedAt"`
}

func toClusterJSON(c *cluster) clusterJSON {
	return clusterJSON{
		Name: c.Name, ARN: c.ARN, Version: c.Version, Status: "ACTIVE", CreatedAt: epoch(c.createdAt),
		AccessConfig: accessConfigJSON{AuthenticationMode: c.AuthenticationMode}, Tags: c.Tags,
	}
}

func toUpdateJSON(u update, status string) updateJSON {
	return updateJSON{
		ID: u.id, Status: status, Type: "AccessConfigUpdate", CreatedAt: epoch(u.createdAt),
		Params: []updateParamJSON{{Type: "AuthenticationMode", Value: u.mode}}, Errors: []struct{}{},
	}
}

func toEntryJSON(c *cluster, e *entry) accessEntryJSON {
	return accessEntryJSON{
		ClusterName: c.Name, PrincipalARN: e.PrincipalARN, KubernetesGroups: e.KubernetesGroups,
		AccessEntryARN: e.ARN, CreatedAt: epoch(e.CreatedAt), ModifiedAt: epoch(e.ModifiedAt),
		Tags: e.Tags, Username: e.Username, Type: e.Type,
	}
}

func toPolicyJSON(p AssociatedPolicy) associatedPolicyJSON {
	return associatedPolicyJSON{
		PolicyARN:    p.PolicyARN,
		AccessScope:  accessScopeJSON{Type: p.Scope.Type, Namespaces: nonNil(p.Scope.Namespaces)},
		AssociatedAt: epoch(p.AssociatedAt), ModifiedAt: epoch(p.ModifiedAt),
	}
}

// nonNil makes an absent list an empty one, as EKS answers "[]" rather
// than leaving the member out.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// cluster finds a cluster by name.
func (s *Server) cluster(name string) (*cluster, *APIError) {
	c, ok := s.clusters[name]
	if !ok {
		return nil, resourceNotFound("No cluster found for name: %s.", name)
	}
	return c, nil
}

// entriesCluster finds a cluster for an access entry operation, which EKS
// refuses while the cluster authenticates from the ConfigMap only
// (setting-up-access-entries.html: "To begin using access entries, you must
// change the authentication mode of the cluster to either the
// API_AND_CONFIG_MAP or API modes").
func (s *Server) entriesCluster(name string) (*cluster, *APIError) {
	c, err := s.cluster(name)
	if err != nil {
		return nil, err
	}
	if c.AuthenticationMode == ModeConfigMap {
		return nil, invalidRequest(msgModeNeedsAPI)
	}
	return c, nil
}

// entry finds an access entry. visibleOnly hides entries the eventual
// consistency delay still holds back, for List and Describe.
func (s *Server) entry(c *cluster, principalARN string, visibleOnly bool) (*entry, *APIError) {
	e, ok := c.entries[principalARN]
	if !ok || (visibleOnly && s.cfg.now().Before(e.visibleAt)) {
		return nil, resourceNotFound(msgNoEntry)
	}
	return e, nil
}

// requestedEntry is the cluster and the access entry a request's path
// names: the prologue of every operation on one entry.
func (s *Server) requestedEntry(r *request, visibleOnly bool) (*cluster, *entry, *APIError) {
	c, err := s.entriesCluster(r.label("name"))
	if err != nil {
		return nil, nil, err
	}
	e, err := s.entry(c, r.label("principalArn"), visibleOnly)
	if err != nil {
		return nil, nil, err
	}
	return c, e, nil
}

func (s *Server) describeCluster(r *request) (any, *APIError) {
	c, err := s.cluster(r.label("name"))
	if err != nil {
		return nil, err
	}
	return map[string]any{"cluster": toClusterJSON(c)}, nil
}

// updateClusterConfig applies an authentication mode change at once; the
// update it answers with reads InProgress, as EKS answers, and DescribeUpdate
// reports it Successful.
func (s *Server) updateClusterConfig(r *request) (any, *APIError) {
	c, err := s.cluster(r.label("name"))
	if err != nil {
		return nil, err
	}
	var in map[string]json.RawMessage
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	for k := range in {
		if k != "accessConfig" && k != "clientRequestToken" {
			return nil, invalidParameter("awsfake supports only accessConfig updates, not %s", k)
		}
	}
	var ac struct {
		AuthenticationMode string `json:"authenticationMode"`
	}
	if raw, ok := in["accessConfig"]; ok {
		if err := json.Unmarshal(raw, &ac); err != nil {
			return nil, newError(http.StatusBadRequest, "SerializationException", "accessConfig is not valid: %v", err)
		}
	}
	if ac.AuthenticationMode == "" {
		return nil, invalidParameter("No changes needed")
	}
	if err := checkModeChange(c.AuthenticationMode, ac.AuthenticationMode); err != nil {
		return nil, err
	}
	c.AuthenticationMode = ac.AuthenticationMode
	u := update{id: newID(), mode: ac.AuthenticationMode, createdAt: s.cfg.now()}
	c.updates[u.id] = u
	return map[string]any{"update": toUpdateJSON(u, "InProgress")}, nil
}

func (s *Server) describeUpdate(r *request) (any, *APIError) {
	c, err := s.cluster(r.label("name"))
	if err != nil {
		return nil, err
	}
	u, ok := c.updates[r.label("updateId")]
	if !ok {
		return nil, resourceNotFound("No update found for ID: %s", r.label("updateId"))
	}
	return map[string]any{"update": toUpdateJSON(u, "Successful")}, nil
}

func (s *Server) createAccessEntry(r *request) (any, *APIError) {
	c, err := s.entriesCluster(r.label("name"))
	if err != nil {
		return nil, err
	}
	var in struct {
		PrincipalARN     string            `json:"principalArn"`
		KubernetesGroups []string          `json:"kubernetesGroups"`
		Tags             map[string]string `json:"tags"`
		Type             string            `json:"type"`
		Username         string            `json:"username"`
	}
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	e, err := s.newEntry(c, AccessEntry{
		PrincipalARN: in.PrincipalARN, Type: in.Type, Username: in.Username,
		KubernetesGroups: in.KubernetesGroups, Tags: in.Tags,
	}, true)
	if err != nil {
		return nil, err
	}
	e.visibleAt = e.CreatedAt.Add(s.faults.visibilityDelay())
	c.entries[e.PrincipalARN] = e
	return map[string]any{"accessEntry": toEntryJSON(c, e)}, nil
}

// newEntry checks an entry to be created against the rules of
// creating-access-entries.html and fills in what EKS fills in. iamChecked
// says whether the principal must exist in the fake's IAM: CreateAccessEntry
// needs "one existing IAM principal", but a seeded entry may name one that
// is gone, since an entry outlives its principal.
func (s *Server) newEntry(c *cluster, in AccessEntry, iamChecked bool) (*entry, *APIError) {
	p, err := parsePrincipal(in.PrincipalARN)
	if err != nil {
		return nil, err
	}
	if _, known := s.principals[in.PrincipalARN]; iamChecked && !known {
		return nil, invalidParameter(msgBadPrincipal)
	}
	typ := in.Type
	if typ == "" {
		typ = TypeStandard
	}
	if !validType(typ) {
		return nil, invalidParameter("The access entry type %s is invalid", typ)
	}
	if typ != TypeStandard {
		switch {
		case p.kind != "role":
			return nil, invalidParameter("An access entry of type %s takes the ARN of an IAM role", typ)
		case p.account != s.cfg.accountID:
			return nil, invalidParameter("The principal of an access entry of type %s must be in the cluster's account %s", typ, s.cfg.accountID)
		case len(in.KubernetesGroups) > 0:
			return nil, invalidParameter("An access entry of type %s takes no kubernetesGroups", typ)
		case in.Username != "":
			return nil, invalidParameter("An access entry of type %s takes no username, EKS sets it", typ)
		}
	}
	if err := checkGroups(in.KubernetesGroups); err != nil {
		return nil, err
	}
	if in.Username != "" {
		if err := checkUsername(in.Username); err != nil {
			return nil, err
		}
	}
	if err := checkTags(in.Tags, invalidParameter); err != nil {
		return nil, err
	}
	if _, dup := c.entries[in.PrincipalARN]; dup {
		return nil, resourceInUse("The specified access entry resource is already in use on this cluster.")
	}
	if len(c.entries) >= s.cfg.maxEntries {
		return nil, resourceLimitExceeded("Cluster %s has reached the limit of %d access entries.", c.Name, s.cfg.maxEntries)
	}
	username := in.Username
	if username == "" {
		username = defaultUsername(p, typ)
	}
	now := s.cfg.now()
	return &entry{AccessEntry: AccessEntry{
		PrincipalARN:     in.PrincipalARN,
		Type:             typ,
		Username:         username,
		KubernetesGroups: nonNil(slices.Clone(in.KubernetesGroups)),
		Tags:             cloneTags(in.Tags),
		ARN: "arn:aws:eks:" + s.cfg.region + ":" + s.cfg.accountID + ":access-entry/" + c.Name +
			"/" + p.kind + "/" + p.account + "/" + p.name + "/" + newID(),
		CreatedAt:  now,
		ModifiedAt: now,
	}}, nil
}

func (s *Server) describeAccessEntry(r *request) (any, *APIError) {
	c, e, err := s.requestedEntry(r, true)
	if err != nil {
		return nil, err
	}
	return map[string]any{"accessEntry": toEntryJSON(c, e)}, nil
}

func (s *Server) listAccessEntries(r *request) (any, *APIError) {
	c, err := s.entriesCluster(r.label("name"))
	if err != nil {
		return nil, err
	}
	policy := r.req.URL.Query().Get("associatedPolicyArn")
	now := s.cfg.now()
	var arns []string
	for _, e := range c.sortedEntries() {
		if now.Before(e.visibleAt) {
			continue
		}
		if _, has := e.policy(policy); policy != "" && !has {
			continue
		}
		arns = append(arns, e.PrincipalARN)
	}
	arns, next, err := page(r, arns, func(a string) string { return a })
	if err != nil {
		return nil, err
	}
	return struct {
		AccessEntries []string `json:"accessEntries"`
		NextToken     *string  `json:"nextToken,omitempty"`
	}{nonNil(arns), next}, nil
}

func (s *Server) updateAccessEntry(r *request) (any, *APIError) {
	c, e, err := s.requestedEntry(r, false)
	if err != nil {
		return nil, err
	}
	// Pointers tell a member left out, which keeps its value, from one
	// given. The request has no type: "You can't change the type after the
	// access entry is created."
	var in struct {
		KubernetesGroups *[]string `json:"kubernetesGroups"`
		Username         *string   `json:"username"`
	}
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	groupsGiven := in.KubernetesGroups != nil && len(*in.KubernetesGroups) > 0
	usernameGiven := in.Username != nil && *in.Username != ""
	if e.Type != TypeStandard && (groupsGiven || usernameGiven) {
		return nil, invalidParameter(msgOnlyStandard)
	}
	if in.KubernetesGroups != nil {
		if err := checkGroups(*in.KubernetesGroups); err != nil {
			return nil, err
		}
	}
	if usernameGiven {
		if err := checkUsername(*in.Username); err != nil {
			return nil, err
		}
	}
	if in.KubernetesGroups != nil {
		e.KubernetesGroups = nonNil(slices.Clone(*in.KubernetesGroups))
	}
	if usernameGiven {
		e.Username = *in.Username
	}
	e.ModifiedAt = s.cfg.now()
	return map[string]any{"accessEntry": toEntryJSON(c, e)}, nil
}

func (s *Server) deleteAccessEntry(r *request) (any, *APIError) {
	c, e, err := s.requestedEntry(r, false)
	if err != nil {
		return nil, err
	}
	delete(c.entries, e.PrincipalARN)
	return nil, nil
}

func (s *Server) associateAccessPolicy(r *request) (any, *APIError) {
	c, e, err := s.requestedEntry(r, false)
	if err != nil {
		return nil, err
	}
	var in struct {
		PolicyARN   string           `json:"policyArn"`
		AccessScope *accessScopeJSON `json:"accessScope"`
	}
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	if in.AccessScope == nil {
		return nil, invalidParameter("accessScope is required")
	}
	p, err := s.associate(e, in.PolicyARN, AccessScope{Type: in.AccessScope.Type, Namespaces: in.AccessScope.Namespaces})
	if err != nil {
		return nil, err
	}
	return map[string]any{
		"clusterName": c.Name, "principalArn": e.PrincipalARN, "associatedAccessPolicy": toPolicyJSON(p),
	}, nil
}

// associate associates a policy with an entry, or changes the scope of an
// association: access-policies.html, "If you later want to change the
// scope of an associated access policy, run the previous command again with
// the new scope"; "you can only associate each policy to an access entry
// once".
func (s *Server) associate(e *entry, policyARN string, scope AccessScope) (AssociatedPolicy, *APIError) {
	if !takesPolicies(e.Type) {
		return AssociatedPolicy{}, invalidParameter(msgOnlyStandard)
	}
	if !knownPolicy(policyARN) {
		return AssociatedPolicy{}, resourceNotFound("The specified policyArn %s could not be found. You can view the available access policies with 'list-access-policies'.", policyARN)
	}
	if err := checkScope(scope); err != nil {
		return AssociatedPolicy{}, err
	}
	scope.Namespaces = slices.Clone(scope.Namespaces)
	now := s.cfg.now()
	if i, ok := e.policy(policyARN); ok {
		e.Policies[i].Scope = scope
		e.Policies[i].ModifiedAt = now
		return e.Policies[i], nil
	}
	p := AssociatedPolicy{PolicyARN: policyARN, Scope: scope, AssociatedAt: now, ModifiedAt: now}
	i, _ := e.policy(policyARN)
	e.Policies = slices.Insert(e.Policies, i, p)
	return p, nil
}

func (s *Server) disassociateAccessPolicy(r *request) (any, *APIError) {
	_, e, err := s.requestedEntry(r, false)
	if err != nil {
		return nil, err
	}
	i, ok := e.policy(r.label("policyArn"))
	if !ok {
		return nil, resourceNotFound("The access policy %s is not associated with this access entry.", r.label("policyArn"))
	}
	e.Policies = slices.Delete(e.Policies, i, i+1)
	return nil, nil
}

func (s *Server) listAssociatedAccessPolicies(r *request) (any, *APIError) {
	c, e, err := s.requestedEntry(r, false)
	if err != nil {
		return nil, err
	}
	policies, next, err := page(r, e.Policies, func(p AssociatedPolicy) string { return p.PolicyARN })
	if err != nil {
		return nil, err
	}
	out := make([]associatedPolicyJSON, 0, len(policies))
	for _, p := range policies {
		out = append(out, toPolicyJSON(p))
	}
	return struct {
		ClusterName              string                 `json:"clusterName"`
		PrincipalARN             string                 `json:"principalArn"`
		AssociatedAccessPolicies []associatedPolicyJSON `json:"associatedAccessPolicies"`
		NextToken                *string                `json:"nextToken,omitempty"`
	}{c.Name, e.PrincipalARN, out, next}, nil
}

func (s *Server) listAccessPolicies(r *request) (any, *APIError) {
	names, next, err := page(r, accessPolicies, func(n string) string { return n })
	if err != nil {
		return nil, err
	}
	out := make([]map[string]string, 0, len(names))
	for _, n := range names {
		out = append(out, map[string]string{"name": n, "arn": PolicyARN(n)})
	}
	return struct {
		AccessPolicies []map[string]string `json:"accessPolicies"`
		NextToken      *string             `json:"nextToken,omitempty"`
	}{out, next}, nil
}

// page cuts one page out of items sorted by key. The token is the key of
// the last item handed out, so that a page boundary survives items added or
// deleted between calls. maxResults is "between 1 and 100. If you don't use
// this parameter, 100 results" (ListAccessEntries API reference).
func page[T any](r *request, items []T, key func(T) string) ([]T, *string, *APIError) {
	q := r.req.URL.Query()
	limit := 100
	if v := q.Get("maxResults"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			return nil, nil, invalidParameter("maxResults must be between 1 and 100, got %s", v)
		}
		limit = n
	}
	start := 0
	if tok := q.Get("nextToken"); tok != "" {
		after, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil {
			return nil, nil, invalidParameter("The nextToken %s is not valid", tok)
		}
		i, found := slices.BinarySearchFunc(items, string(after), func(it T, k string) int { return strings.Compare(key(it), k) })
		if found {
			i++
		}
		start = i
	}
	end := min(start+limit, len(items))
	out := items[start:end]
	if end == len(items) {
		return out, nil, nil
	}
	next := base64.RawURLEncoding.EncodeToString([]byte(key(items[end-1])))
	return out, &next, nil
}

// taggable finds the tags of a resource by ARN: a cluster or an access
// entry.
func (s *Server) taggable(arn string) (*map[string]string, *APIError) {
	for _, c := range s.clusters {
		if c.ARN == arn {
			return &c.Tags, nil
		}
		for _, e := range c.entries {
			if e.ARN == arn {
				return &e.Tags, nil
			}
		}
	}
	return nil, notFound("Resource %s not found", arn)
}

func (s *Server) listTagsForResource(r *request) (any, *APIError) {
	tags, err := s.taggable(r.label("resourceArn"))
	if err != nil {
		return nil, err
	}
	return map[string]any{"tags": *tags}, nil
}

// tagResource adds tags and overwrites the values of keys already there:
// "If existing tags on a resource are not specified in the request
// parameters, they aren't changed" (TagResource API reference).
func (s *Server) tagResource(r *request) (any, *APIError) {
	tags, err := s.taggable(r.label("resourceArn"))
	if err != nil {
		return nil, err
	}
	var in struct {
		Tags map[string]string `json:"tags"`
	}
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	if len(in.Tags) == 0 {
		return nil, badRequest("tags must name at least one tag")
	}
	merged := maps.Clone(*tags)
	maps.Copy(merged, in.Tags)
	if err := checkTags(merged, badRequest); err != nil {
		return nil, err
	}
	*tags = merged
	return nil, nil
}

func (s *Server) untagResource(r *request) (any, *APIError) {
	tags, err := s.taggable(r.label("resourceArn"))
	if err != nil {
		return nil, err
	}
	keys := r.req.URL.Query()["tagKeys"]
	if len(keys) == 0 {
		return nil, badRequest("tagKeys must name at least one key")
	}
	for _, k := range keys {
		delete(*tags, k)
	}
	return nil, nil
}
