package aws

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"time"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	smithy "github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/computebot/computebot"
)

// Codes of our own, for failures that carry no AWS error code.
const (
	CodeTimeout       = "Timeout"       // the call outlived CallTimeout (or the caller's deadline)
	CodeCanceled      = "Canceled"      // the caller gave up
	CodeNoCredentials = "NoCredentials" // the SDK found no usable credentials
	CodeUnreachable   = "Unreachable"   // no HTTP answer (DNS, connection refused…)
	CodeUnexpected    = "AWSError"      // anything else without an AWS code
	CodePriceUnknown  = "PriceUnknown"  // the Pricing API had no price for the type
)

// callInfo names the request that failed, in the words the messages need.
// Only the fields relevant to the call are set.
type callInfo struct {
	API        string // the operation as an IAM action, e.g. "ec2:RunInstances"
	IAM        string // the IAM actions it needs, when more than API
	Type       string // instance type
	Image      string // AMI ID
	KeyName    string
	SubnetID   string
	Groups     []string
	InstanceID string
	Verb       string // what the call does to the instance, as a past participle: "stopped", "started"…
	Param      string // SSM parameter name
	Function   string // Lambda function name
}

func (c callInfo) iam() string {
	if c.IAM != "" {
		return c.IAM
	}
	return c.API
}

// errorRule turns some AWS error codes into a message for a Slack user.
type errorRule struct {
	codes    []string // exact codes; a trailing "*" matches a prefix
	notFound bool     // also wrap computebot.ErrNotFound
	also     error    // when set, also wrapped (computebot.ErrNoCapacity…)
	// transient: the same call may well succeed if tried again shortly
	// (throttling, the service's own errors); callers read it with
	// computebot.Transient.
	transient bool
	message   func(c callInfo, code, awsMessage string) string
}

// errorRules is checked in order; the first rule with a matching code wins.
var errorRules = []errorRule{
	{
		codes: []string{"InsufficientInstanceCapacity", "InsufficientCapacity"},
		also:  computebot.ErrNoCapacity,
		message: func(c callInfo, _, _ string) string {
			return fmt.Sprintf("AWS has no spare %s capacity in this Availability Zone right now. "+
				"Try again in a few minutes or pick another instance type.", or(c.Type, "instance"))
		},
	},
	{
		codes:    []string{"InvalidAMIID.NotFound", "InvalidAMIID.Malformed", "InvalidAMIID.Unavailable"},
		notFound: true,
		message: func(c callInfo, _, _ string) string {
			return fmt.Sprintf("AMI %s does not exist in this region (or is not shared with this account).", or(c.Image, "(unknown)"))
		},
	},
	{
		codes: []string{"UnauthorizedOperation", "AccessDenied*"},
		message: func(c callInfo, code, _ string) string {
			return fmt.Sprintf("The bot's AWS role is not allowed to call %s (%s). Ask an admin to check the IAM policy.", c.iam(), code)
		},
	},
	{
		codes: []string{"AuthFailure", "InvalidClientTokenId", "UnrecognizedClientException", "ExpiredToken",
			"ExpiredTokenException", "SignatureDoesNotMatch", "InvalidSignatureException", "IncompleteSignature",
			"MissingAuthenticationToken"},
		message: func(_ callInfo, code, _ string) string {
			return fmt.Sprintf("AWS rejected the bot's credentials (%s). Ask an admin to check its AWS role or keys.", code)
		},
	},
	{
		codes: []string{"VcpuLimitExceeded"},
		message: func(callInfo, string, string) string {
			return "This AWS account has reached its vCPU limit for this instance family. Ask an admin to request a quota increase."
		},
	},
	{
		codes: []string{"InstanceLimitExceeded"},
		message: func(callInfo, string, string) string {
			return "This AWS account has reached its instance limit in this region. Ask an admin to request a quota increase."
		},
	},
	{
		codes: []string{"RequestLimitExceeded", "Throttling", "ThrottlingException", "ThrottledException",
			"TooManyRequestsException", "RequestThrottled", "RequestThrottledException", "PriorRequestNotComplete"},
		transient: true,
		message: func(c callInfo, code, _ string) string {
			if c.Function != "" && code == "TooManyRequestsException" {
				return fmt.Sprintf("Lambda is throttling %s right now (too many concurrent runs or requests); try again shortly.", c.Function)
			}
			if strings.HasPrefix(c.API, "cloudwatch:") {
				return fmt.Sprintf("CloudWatch is throttling metric reads right now (%s, %s); try again shortly.", code, c.API)
			}
			return "AWS is throttling requests right now; try again shortly."
		},
	},
	{
		codes:    []string{"InvalidInstanceType"},
		notFound: true,
		message: func(c callInfo, _, _ string) string {
			return fmt.Sprintf("%s is not an EC2 instance type offered in this region.", or(c.Type, "That"))
		},
	},
	{
		codes: []string{"InvalidParameterValue", "InvalidParameterCombination", "InvalidParameterValueException",
			"ValidationError", "ValidationException", "MissingParameter", "InvalidNextToken"},
		message: func(c callInfo, code, msg string) string {
			low := strings.ToLower(msg)
			if c.Type != "" && (strings.Contains(low, "instancetype") || strings.Contains(low, "instance type")) {
				return fmt.Sprintf("AWS does not accept %s as an instance type here (%s). Pick another instance type.", c.Type, code)
			}
			return fmt.Sprintf("AWS rejected a parameter of %s (%s): %s", c.API, code, or(truncate(msg, 200), "no details"))
		},
	},
	{
		codes: []string{"Unsupported"},
		message: func(c callInfo, _, _ string) string {
			return fmt.Sprintf("%s is not supported in this Availability Zone or with this AMI (Unsupported). "+
				"Pick another instance type, or ask an admin to change the subnet.", or(c.Type, "This instance type"))
		},
	},
	{
		codes:    []string{"InvalidKeyPair.NotFound", "InvalidKeyPair.Malformed"},
		notFound: true,
		message: func(c callInfo, _, _ string) string {
			return fmt.Sprintf("Key pair %q does not exist in this region. Ask an admin to create it or fix launch.key_name.", c.KeyName)
		},
	},
	{
		codes:    []string{"InvalidSubnetID.NotFound", "InvalidSubnetID.Malformed", "InvalidSubnet*"},
		notFound: true,
		message: func(c callInfo, _, _ string) string {
			return fmt.Sprintf("Subnet %s does not exist in this region. Ask an admin to fix launch.subnet_id (or launch.subnet_ids).", or(c.SubnetID, "(default)"))
		},
	},
	{
		codes:    []string{"InvalidGroup.NotFound", "InvalidGroupId.Malformed", "InvalidGroup.*"},
		notFound: true,
		message: func(c callInfo, _, _ string) string {
			return fmt.Sprintf("Security group %s does not exist in this region or not in the subnet's VPC. "+
				"Ask an admin to fix launch.security_group_ids.", or(strings.Join(c.Groups, ", "), "(default)"))
		},
	},
	{
		codes: []string{"InsufficientFreeAddressesInSubnet"},
		message: func(c callInfo, _, _ string) string {
			return fmt.Sprintf("Subnet %s has no free IP addresses left. Ask an admin to pick another subnet (launch.subnet_id, launch.subnet_ids).", or(c.SubnetID, "(default)"))
		},
	},
	{
		codes: []string{"IdempotentParameterMismatch"},
		message: func(callInfo, string, string) string {
			return "This request was already launched once with different settings, so AWS refused to launch it again " +
				"(IdempotentParameterMismatch). Make a new request."
		},
	},
	{
		codes:    []string{"ParameterNotFound", "ParameterVersionNotFound"},
		notFound: true,
		message: func(c callInfo, _, _ string) string {
			return fmt.Sprintf("SSM parameter %s does not exist in this region, so the AMI cannot be resolved. Ask an admin to fix launch.ami.", c.Param)
		},
	},
	{
		codes:    []string{"InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"},
		notFound: true,
		message: func(c callInfo, _, _ string) string {
			return fmt.Sprintf("Instance %s does not exist in this region.", or(c.InstanceID, "(unknown)"))
		},
	},
	{
		codes: []string{"IncorrectInstanceState"},
		message: func(c callInfo, _, msg string) string {
			subject := "The instance"
			if c.InstanceID != "" {
				subject = "Instance " + c.InstanceID
			}
			if state := stateInMessage(msg); state != "" && c.Verb != "" {
				return fmt.Sprintf("%s is %s, so it can't be %s.", subject, state, c.Verb)
			}
			if c.Verb != "" {
				return fmt.Sprintf("%s is not in a state that allows this; it can't be %s right now.", subject, c.Verb)
			}
			return fmt.Sprintf("%s is not in a state that allows this.", subject)
		},
	},
	{
		codes: []string{"TagLimitExceeded"},
		message: func(c callInfo, _, _ string) string {
			return fmt.Sprintf("Instance %s already has the most tags AWS allows (50), so no tag can be added.", or(c.InstanceID, "(unknown)"))
		},
	},
	{
		codes:    []string{"ResourceNotFoundException"},
		notFound: true,
		message: func(c callInfo, _, _ string) string {
			if c.Function != "" {
				return fmt.Sprintf("Lambda function %s does not exist in this region.", c.Function)
			}
			return fmt.Sprintf("AWS says the resource %s asked for does not exist in this region.", c.API)
		},
	},
	{
		codes: []string{"RequestTooLargeException"},
		message: func(callInfo, string, string) string {
			return "The payload is too large for Lambda (max 6 MB sync / 256 KB async)."
		},
	},
	{
		codes: []string{"InvalidRequestContentException"},
		message: func(c callInfo, code, msg string) string {
			return fmt.Sprintf("Lambda could not read the payload for %s as JSON (%s): %s",
				or(c.Function, "the function"), code, or(truncate(msg, 200), "no details"))
		},
	},
	{
		codes: []string{"ResourceConflictException", "ResourceNotReadyException"},
		message: func(c callInfo, code, _ string) string {
			return fmt.Sprintf("Lambda function %s is not ready to run right now, e.g. while it is being updated (%s); try again in a moment.",
				or(c.Function, "(unknown)"), code)
		},
	},
	{
		codes: []string{"OptInRequired"},
		message: func(callInfo, string, string) string {
			return "This AWS account is not subscribed to this service or region (OptInRequired). Ask an admin to enable it."
		},
	},
	{
		codes: []string{"InternalError", "InternalFailure", "InternalServerError", "InternalServerException",
			"InternalServiceError", "ServiceUnavailable", "ServiceUnavailableException", "Unavailable", "ServiceException"},
		transient: true,
		message: func(_ callInfo, code, _ string) string {
			return fmt.Sprintf("AWS had an internal error (%s); try again shortly.", code)
		},
	},
}

// mapError turns any error from an SDK call into a *computebot.Error whose
// Message a Slack user understands. AWS's own message is kept only in Err
// (for logs), except for parameter validation where it is the useful part.
// The chain still matches context.DeadlineExceeded / context.Canceled and,
// for "does not exist" codes, computebot.ErrNotFound.
func mapError(info callInfo, timeout time.Duration, err error) error {
	if err == nil {
		return nil
	}
	var ce *computebot.Error
	if errors.As(err, &ce) {
		return err
	}

	// An answer from AWS wins over everything else: it says what happened.
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		code := apiErr.ErrorCode()
		for _, r := range errorRules {
			if !matchCode(r.codes, code) {
				continue
			}
			wrapped := err
			if r.notFound {
				wrapped = fmt.Errorf("%w: %w", computebot.ErrNotFound, err)
			}
			if r.also != nil {
				wrapped = fmt.Errorf("%w: %w", r.also, wrapped)
			}
			return &computebot.Error{Code: code, Message: r.message(info, code, apiErr.ErrorMessage()), Transient: r.transient, Err: wrapped}
		}
		if code == "" {
			code = CodeUnexpected
		}
		return &computebot.Error{Code: code, Message: fmt.Sprintf("AWS refused %s: %s.", info.API, code), Err: err}
	}

	var netErr net.Error
	var respTimeout *awshttp.ResponseTimeoutError
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return &computebot.Error{Code: CodeTimeout, Message: timeoutMessage(info, timeout), Transient: true, Err: err}
	case errors.As(err, &respTimeout), errors.As(err, &netErr) && netErr.Timeout():
		return &computebot.Error{Code: CodeTimeout, Message: timeoutMessage(info, timeout), Transient: true,
			Err: fmt.Errorf("%w: %w", context.DeadlineExceeded, err)}
	case errors.Is(err, context.Canceled):
		return &computebot.Error{Code: CodeCanceled, Message: fmt.Sprintf("The call to %s was cancelled.", info.API), Err: err}
	case isCredentialError(err):
		return &computebot.Error{Code: CodeNoCredentials,
			Message: "The bot has no usable AWS credentials. Ask an admin to check its AWS role or environment.", Err: err}
	}
	var sendErr *smithyhttp.RequestSendError
	if errors.As(err, &sendErr) {
		return &computebot.Error{Code: CodeUnreachable, Transient: true,
			Message: fmt.Sprintf("The bot could not reach AWS (%s). Try again shortly; if it persists, ask an admin to check the network.", info.API),
			Err:     err}
	}
	return &computebot.Error{Code: CodeUnexpected,
		Message: fmt.Sprintf("Something went wrong calling AWS (%s); details are in the bot's log.", info.API), Err: err}
}

// notFoundError reports an empty answer (no image, no instance…) exactly as
// if AWS had answered with code.
func notFoundError(info callInfo, code string) error {
	return mapError(info, 0, &smithy.GenericAPIError{Code: code, Message: "not in the response", Fault: smithy.FaultClient})
}

func matchCode(patterns []string, code string) bool {
	for _, p := range patterns {
		if prefix, ok := strings.CutSuffix(p, "*"); ok {
			if strings.HasPrefix(code, prefix) {
				return true
			}
		} else if p == code {
			return true
		}
	}
	return false
}

// isCredentialError recognises the SDK's "no credentials" failures, which
// carry no type of their own (only text).
func isCredentialError(err error) bool {
	s := err.Error()
	return strings.Contains(s, "get identity:") ||
		strings.Contains(s, "failed to retrieve credentials") ||
		strings.Contains(s, "failed to refresh cached credentials")
}

// timeoutMessage says how long the bot waited (d, 0 when unknown) and, for
// a Lambda invoke, that the function may well still be running: Lambda
// does not stop a function whose caller went away.
func timeoutMessage(info callInfo, d time.Duration) string {
	who := "AWS"
	switch {
	case strings.HasPrefix(info.API, "lambda:"):
		who = "Lambda"
	case strings.HasPrefix(info.API, "cloudwatch:"):
		who = "CloudWatch"
	}
	within := "in time"
	if d > 0 {
		within = "within " + formatDuration(d)
	}
	msg := fmt.Sprintf("%s did not answer %s.", who, within)
	if info.API == apiInvoke && info.Function != "" {
		msg = fmt.Sprintf("%s did not answer %s; %s may still be running.", who, within, info.Function)
	}
	return msg
}

// roundBudget rounds a time budget computed from a deadline (59.99987s) to
// what the caller set (1m), for messages.
func roundBudget(d time.Duration) time.Duration {
	switch {
	case d <= 0:
		return 0
	case d < time.Second:
		return max(d.Round(time.Millisecond), time.Millisecond)
	case d < 10*time.Second:
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Second)
}

// stateInMessageRE finds an EC2 state name said to be the current one:
// "is stopping", "is in state 'stopped'", "current state: running".
var stateInMessageRE = regexp.MustCompile(`(?i)\b(?:is|was) (?:currently |now )?(?:in (?:the )?(?:state )?)?['"]?(pending|running|stopping|stopped|shutting-down|terminated)\b|` +
	`\b(?:current state|state is)\s*:?\s*['"]?(pending|running|stopping|stopped|shutting-down|terminated)\b`)

// stateInMessage finds the instance's current state in an
// IncorrectInstanceState message ("… is in state 'stopping'"), or "". EC2's
// usual text ("… is not in a state from which it can be stopped") names none;
// "is not in the 'stopped' state" names the required one, not the current,
// and is left alone.
func stateInMessage(msg string) string {
	m := stateInMessageRE.FindStringSubmatch(msg)
	if m == nil {
		return ""
	}
	return strings.ToLower(m[1] + m[2])
}

// formatDuration prints 20s, 1m30s, 1.5s, 2m rather than 2m0s.
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func or(s, fallback string) string {
	if s == "" {
		return fallback
	}
	return s
}
