package awsfake

import (
	"fmt"
	"net/http"
)

// APIError is a refusal in the service's own terms: the error code the SDK
// maps to a typed error, the HTTP status it arrives with, and the message.
// The handlers answer with it over HTTP; the seeding and mutation helpers
// return it as a Go error, so a test that seeds a state AWS would refuse
// learns which rule it broke.
type APIError struct {
	StatusCode int
	Code       string
	Message    string
}

func (e *APIError) Error() string { return e.Code + ": " + e.Message }

func newError(status int, code, format string, args ...any) *APIError {
	return &APIError{StatusCode: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// The EKS error shapes, with the status codes the service model gives them.
func invalidParameter(format string, args ...any) *APIError {
	return newError(http.StatusBadRequest, "InvalidParameterException", format, args...)
}

func invalidRequest(format string, args ...any) *APIError {
	return newError(http.StatusBadRequest, "InvalidRequestException", format, args...)
}

func resourceNotFound(format string, args ...any) *APIError {
	return newError(http.StatusNotFound, "ResourceNotFoundException", format, args...)
}

func resourceInUse(format string, args ...any) *APIError {
	return newError(http.StatusConflict, "ResourceInUseException", format, args...)
}

func resourceLimitExceeded(format string, args ...any) *APIError {
	return newError(http.StatusBadRequest, "ResourceLimitExceededException", format, args...)
}

// The tagging operations have their own pair of errors in the EKS model.
func badRequest(format string, args ...any) *APIError {
	return newError(http.StatusBadRequest, "BadRequestException", format, args...)
}

func notFound(format string, args ...any) *APIError {
	return newError(http.StatusNotFound, "NotFoundException", format, args...)
}

// The IAM errors: IAM answers in the query protocol, whose codes carry no
// "Exception" suffix.
func noSuchEntity(format string, args ...any) *APIError {
	return newError(http.StatusNotFound, "NoSuchEntity", format, args...)
}

func validationError(format string, args ...any) *APIError {
	return newError(http.StatusBadRequest, "ValidationError", format, args...)
}
