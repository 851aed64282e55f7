package eksapi

import (
	"errors"

	"github.com/aws/aws-sdk-go-v2/service/eks/types"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/smithy-go"
)

// IsNotFound reports whether err says that what was named does not exist:
// the cluster or access entry (EKS ResourceNotFoundException), the tagged
// resource (EKS NotFoundException), or the IAM role (NoSuchEntity).
func IsNotFound(err error) bool {
	return isA[*types.ResourceNotFoundException](err) ||
		isA[*types.NotFoundException](err) ||
		isA[*iamtypes.NoSuchEntityException](err)
}

// IsConflict reports whether err is EKS's ResourceInUseException: the
// access entry exists already, or the resource is busy with another change.
func IsConflict(err error) bool {
	return isA[*types.ResourceInUseException](err)
}

// IsRefused reports whether EKS refused the request for what it asks:
// as invalid (InvalidParameterException, InvalidRequestException, the
// tagging operations' BadRequestException) or as over a limit of the
// cluster (ResourceLimitExceededException, such as its 3,000 access
// entries). Retrying it unchanged does not succeed soon. Message gives
// AWS's reason.
func IsRefused(err error) bool {
	return isA[*types.InvalidParameterException](err) ||
		isA[*types.InvalidRequestException](err) ||
		isA[*types.BadRequestException](err) ||
		IsLimitExceeded(err)
}

// IsLimitExceeded reports whether EKS refused the request as over a limit
// of the cluster (ResourceLimitExceededException).
func IsLimitExceeded(err error) bool {
	return isA[*types.ResourceLimitExceededException](err)
}

// Message is AWS's own message in err, such as why a request was invalid,
// without the SDK's framing (operation, status, request ID); it is
// err.Error() when err carries no AWS error.
func Message(err error) string {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorMessage()
	}
	return err.Error()
}

func isA[T error](err error) bool {
	var target T
	return errors.As(err, &target)
}
