package awsfake

import (
	"encoding/xml"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// routeIAM dispatches on the form's Action, as the query protocol does.
func (s *Server) routeIAM(req *request) (operation, *request, *APIError) {
	form, err := url.ParseQuery(string(req.body))
	if err != nil {
		return operation{name: "Unknown", iam: true}, req, validationError("The request body is not a valid form: %v", err)
	}
	action := form.Get("Action")
	var serve func(url.Values) (any, *APIError)
	switch action {
	case "GetRole":
		serve = s.getRole
	case "GetUser":
		serve = s.getUser
	default:
		if action == "" {
			action = "Unknown"
		}
		return operation{name: action, iam: true}, req, newError(http.StatusBadRequest, "InvalidAction",
			"Could not find operation %s for version 2010-05-08", action)
	}
	return operation{name: action, iam: true, serve: func(*request) (any, *APIError) { return serve(form) }}, req, nil
}

// The XML shapes of the answers, with the member names of the IAM model.

type iamRole struct {
	Path               string `xml:"Path"`
	RoleName           string `xml:"RoleName"`
	RoleID             string `xml:"RoleId"`
	ARN                string `xml:"Arn"`
	CreateDate         string `xml:"CreateDate"`
	MaxSessionDuration int    `xml:"MaxSessionDuration"`
}

type iamUser struct {
	Path       string `xml:"Path"`
	UserName   string `xml:"UserName"`
	UserID     string `xml:"UserId"`
	ARN        string `xml:"Arn"`
	CreateDate string `xml:"CreateDate"`
}

type getRoleResult struct {
	XMLName xml.Name `xml:"GetRoleResult"`
	Role    iamRole  `xml:"Role"`
}

type getUserResult struct {
	XMLName xml.Name `xml:"GetUserResult"`
	User    iamUser  `xml:"User"`
}

// getRole answers with the role's ARN as IAM holds it, path included,
// which is what a caller needs to name the role in an access entry.
func (s *Server) getRole(form url.Values) (any, *APIError) {
	name := form.Get("RoleName")
	if name == "" {
		return nil, validationError("1 validation error detected: Value null at 'roleName' failed to satisfy constraint: Member must not be null")
	}
	p, ok := s.ownPrincipal("role", name)
	if !ok {
		return nil, noSuchEntity("The role with name %s cannot be found.", name)
	}
	return getRoleResult{Role: iamRole{
		Path: p.arn.path, RoleName: p.arn.name, RoleID: p.id, ARN: p.arn.raw,
		CreateDate: p.createdAt.UTC().Format(time.RFC3339), MaxSessionDuration: 3600,
	}}, nil
}

// getUser needs UserName: the fake has no caller identity to default to.
func (s *Server) getUser(form url.Values) (any, *APIError) {
	name := form.Get("UserName")
	if name == "" {
		return nil, validationError("awsfake answers GetUser only for a named user")
	}
	p, ok := s.ownPrincipal("user", name)
	if !ok {
		return nil, noSuchEntity("The user with name %s cannot be found.", name)
	}
	return getUserResult{User: iamUser{
		Path: p.arn.path, UserName: p.arn.name, UserID: p.id, ARN: p.arn.raw,
		CreateDate: p.createdAt.UTC().Format(time.RFC3339),
	}}, nil
}

// ownPrincipal finds a role or user of the fake's own account by name; IAM
// names are unique regardless of case.
func (s *Server) ownPrincipal(kind, name string) (principal, bool) {
	for _, p := range s.principals {
		if p.arn.kind == kind && p.arn.account == s.cfg.accountID && strings.EqualFold(p.arn.name, name) {
			return p, true
		}
	}
	return principal{}, false
}
