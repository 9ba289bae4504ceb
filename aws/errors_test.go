package aws_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	smithy "github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/aws"
)

// apiErr builds the error the SDK returns for an AWS error answer.
func apiErr(code, msg string) error {
	return &smithy.OperationError{
		ServiceID:     "EC2",
		OperationName: "RunInstances",
		Err: &smithyhttp.ResponseError{
			Response: &smithyhttp.Response{Response: &http.Response{StatusCode: 400}},
			Err:      &smithy.GenericAPIError{Code: code, Message: msg},
		},
	}
}

func TestMapError(t *testing.T) {
	launch := aws.CallInfo{
		API: "ec2:RunInstances", IAM: "ec2:RunInstances and ec2:CreateTags",
		Type: "t2.micro", Image: "ami-0abc", KeyName: "data-science",
		SubnetID: "subnet-1", Groups: []string{"sg-1", "sg-2"},
	}
	tests := []struct {
		name     string
		info     aws.CallInfo
		err      error
		code     string
		message  string // exact, or a substring when contains is set
		contains bool
		notFound bool
		deadline bool
	}{
		{name: "capacity", info: launch, err: apiErr("InsufficientInstanceCapacity", "We currently do not have sufficient t2.micro capacity"),
			code:    "InsufficientInstanceCapacity",
			message: "AWS has no spare t2.micro capacity in this Availability Zone right now. Try again in a few minutes or pick another instance type."},
		{name: "ami not found", info: launch, err: apiErr("InvalidAMIID.NotFound", "The image id '[ami-0abc]' does not exist"),
			code: "InvalidAMIID.NotFound", notFound: true,
			message: "AMI ami-0abc does not exist in this region (or is not shared with this account)."},
		{name: "ami malformed", info: launch, err: apiErr("InvalidAMIID.Malformed", "Invalid id"),
			code: "InvalidAMIID.Malformed", notFound: true,
			message: "AMI ami-0abc does not exist in this region (or is not shared with this account)."},
		{name: "ami unavailable", info: launch, err: apiErr("InvalidAMIID.Unavailable", "gone"),
			code: "InvalidAMIID.Unavailable", notFound: true,
			message: "AMI ami-0abc does not exist in this region (or is not shared with this account)."},
		{name: "unauthorized", info: launch, err: apiErr("UnauthorizedOperation", "You are not authorized. Encoded authorization failure message: AAAA"),
			code:    "UnauthorizedOperation",
			message: "The bot's AWS role is not allowed to call ec2:RunInstances and ec2:CreateTags (UnauthorizedOperation). Ask an admin to check the IAM policy."},
		{name: "access denied", info: aws.CallInfo{API: "pricing:GetProducts"}, err: apiErr("AccessDeniedException", "User: arn:aws:iam::1:user/x is not authorized"),
			code:    "AccessDeniedException",
			message: "The bot's AWS role is not allowed to call pricing:GetProducts (AccessDeniedException). Ask an admin to check the IAM policy."},
		{name: "vcpu", info: launch, err: apiErr("VcpuLimitExceeded", "You have requested more vCPU capacity"),
			code:    "VcpuLimitExceeded",
			message: "This AWS account has reached its vCPU limit for this instance family. Ask an admin to request a quota increase."},
		{name: "throttled ec2", info: launch, err: apiErr("RequestLimitExceeded", "Request limit exceeded."),
			code: "RequestLimitExceeded", message: "AWS is throttling requests right now; try again shortly."},
		{name: "throttled json", info: launch, err: apiErr("ThrottlingException", "Rate exceeded"),
			code: "ThrottlingException", message: "AWS is throttling requests right now; try again shortly."},
		{name: "bad type on launch", info: launch, err: apiErr("InvalidParameterValue", "Invalid value 't2.micro' for InstanceType."),
			code:    "InvalidParameterValue",
			message: "AWS does not accept t2.micro as an instance type here (InvalidParameterValue). Pick another instance type."},
		{name: "other bad parameter", info: launch, err: apiErr("InvalidParameterValue", "Value (x) for parameter groupId is invalid."),
			code:    "InvalidParameterValue",
			message: "AWS rejected a parameter of ec2:RunInstances (InvalidParameterValue): Value (x) for parameter groupId is invalid."},
		{name: "unknown type", info: aws.CallInfo{API: "ec2:DescribeInstanceTypes", Type: "t9.huge"}, err: apiErr("InvalidInstanceType", "bad"),
			code: "InvalidInstanceType", notFound: true,
			message: "t9.huge is not an EC2 instance type offered in this region."},
		{name: "unsupported", info: launch, err: apiErr("Unsupported", "Your requested instance type is not supported in your requested Availability Zone"),
			code: "Unsupported", message: "t2.micro is not supported in this Availability Zone", contains: true},
		{name: "key pair", info: launch, err: apiErr("InvalidKeyPair.NotFound", "The key pair 'data-science' does not exist"),
			code: "InvalidKeyPair.NotFound", notFound: true,
			message: `Key pair "data-science" does not exist in this region. Ask an admin to create it or fix launch.key_name.`},
		{name: "subnet", info: launch, err: apiErr("InvalidSubnetID.NotFound", "The subnet ID 'subnet-1' does not exist"),
			code: "InvalidSubnetID.NotFound", notFound: true,
			message: "Subnet subnet-1 does not exist in this region. Ask an admin to fix launch.subnet_id (or launch.subnet_ids)."},
		{name: "group", info: launch, err: apiErr("InvalidGroup.NotFound", "The security group 'sg-2' does not exist"),
			code: "InvalidGroup.NotFound", notFound: true,
			message: "Security group sg-1, sg-2 does not exist in this region", contains: true},
		{name: "idempotency", info: launch, err: apiErr("IdempotentParameterMismatch", "different parameters"),
			code: "IdempotentParameterMismatch", message: "already launched once with different settings", contains: true},
		{name: "ssm parameter", info: aws.CallInfo{API: "ssm:GetParameter", Param: "/x/y"}, err: apiErr("ParameterNotFound", ""),
			code: "ParameterNotFound", notFound: true,
			message: "SSM parameter /x/y does not exist in this region, so the AMI cannot be resolved. Ask an admin to fix launch.ami."},
		{name: "instance", info: aws.CallInfo{API: "ec2:DescribeInstances", InstanceID: "i-1"}, err: apiErr("InvalidInstanceID.NotFound", "nope"),
			code: "InvalidInstanceID.NotFound", notFound: true, message: "Instance i-1 does not exist in this region."},
		{name: "credentials rejected", info: launch, err: apiErr("AuthFailure", "AWS was not able to validate the provided access credentials"),
			code: "AuthFailure", message: "AWS rejected the bot's credentials (AuthFailure). Ask an admin to check its AWS role or keys."},
		{name: "internal", info: launch, err: apiErr("InternalError", "boom"),
			code: "InternalError", message: "AWS had an internal error (InternalError); try again shortly."},
		{name: "default", info: launch, err: apiErr("SomethingNew", "secret-looking detail AKIA..."),
			code: "SomethingNew", message: "AWS refused ec2:RunInstances: SomethingNew."},
		{name: "deadline", info: launch, err: &smithy.OperationError{Err: fmt.Errorf("send: %w", context.DeadlineExceeded)},
			code: "Timeout", message: "AWS did not answer within 20s.", deadline: true},
		{name: "canceled", info: launch, err: &smithy.OperationError{Err: context.Canceled},
			code: "Canceled", message: "The call to ec2:RunInstances was cancelled."},
		{name: "unreachable", info: launch, err: &smithy.OperationError{Err: &smithyhttp.RequestSendError{Err: errors.New("dial tcp: connection refused")}},
			code: "Unreachable", message: "could not reach AWS", contains: true},
		{name: "no credentials", info: launch, err: &smithy.OperationError{Err: errors.New("get identity: get credentials: failed to refresh cached credentials, no EC2 IMDS role found")},
			code: "NoCredentials", message: "no usable AWS credentials", contains: true},
		{name: "wrong state, none named", info: aws.CallInfo{API: "ec2:StopInstances", InstanceID: "i-1", Verb: "stopped"},
			err:  apiErr("IncorrectInstanceState", "The instance 'i-1' is not in a state from which it can be stopped."),
			code: "IncorrectInstanceState", message: "Instance i-1 is not in a state that allows this; it can't be stopped right now."},
		{name: "wrong state named", info: aws.CallInfo{API: "ec2:StopInstances", InstanceID: "i-1", Verb: "stopped"},
			err:  apiErr("IncorrectInstanceState", "The instance 'i-1' is currently stopped."),
			code: "IncorrectInstanceState", message: "Instance i-1 is stopped, so it can't be stopped."},
		{name: "wrong state, required state is not the current", info: aws.CallInfo{API: "ec2:StartInstances", InstanceID: "i-1", Verb: "started"},
			err:  apiErr("IncorrectInstanceState", "The instance 'i-1' is not in the 'stopped' state."),
			code: "IncorrectInstanceState", message: "Instance i-1 is not in a state that allows this; it can't be started right now."},
		{name: "wrong state, current state", info: aws.CallInfo{API: "ec2:TerminateInstances", InstanceID: "i-1", Verb: "terminated"},
			err:  apiErr("IncorrectInstanceState", "Cannot terminate; current state: Shutting-Down"),
			code: "IncorrectInstanceState", message: "Instance i-1 is shutting-down, so it can't be terminated."},
		{name: "wrong state, no verb", info: aws.CallInfo{API: "ec2:Something", InstanceID: "i-1"},
			err:  apiErr("IncorrectInstanceState", "is in state 'stopped'"),
			code: "IncorrectInstanceState", message: "Instance i-1 is not in a state that allows this."},
		{name: "wrong state, no ID", info: aws.CallInfo{API: "ec2:StopInstances", Verb: "stopped"},
			err:  apiErr("IncorrectInstanceState", "nope"),
			code: "IncorrectInstanceState", message: "The instance is not in a state that allows this; it can't be stopped right now."},
		{name: "tag limit", info: aws.CallInfo{API: "ec2:CreateTags", InstanceID: "i-1"}, err: apiErr("TagLimitExceeded", "too many"),
			code: "TagLimitExceeded", message: "Instance i-1 already has the most tags AWS allows (50), so no tag can be added."},
		{name: "lambda not found", info: aws.CallInfo{API: "lambda:InvokeFunction", Function: "f"},
			err:  apiErr("ResourceNotFoundException", "Function not found: arn:aws:lambda:us-east-1:1:function:f"),
			code: "ResourceNotFoundException", notFound: true, message: "Lambda function f does not exist in this region."},
		{name: "lambda throttled", info: aws.CallInfo{API: "lambda:InvokeFunction", Function: "f"}, err: apiErr("TooManyRequestsException", "Rate Exceeded."),
			code: "TooManyRequestsException", message: "Lambda is throttling f right now (too many concurrent runs or requests); try again shortly."},
		{name: "lambda list throttled", info: aws.CallInfo{API: "lambda:ListFunctions"}, err: apiErr("TooManyRequestsException", "Rate Exceeded."),
			code: "TooManyRequestsException", message: "AWS is throttling requests right now; try again shortly."},
		{name: "lambda too large", info: aws.CallInfo{API: "lambda:InvokeFunction", Function: "f"}, err: apiErr("RequestTooLargeException", "Request must be smaller than 6291456 bytes"),
			code: "RequestTooLargeException", message: "The payload is too large for Lambda (max 6 MB sync / 256 KB async)."},
		{name: "lambda bad json", info: aws.CallInfo{API: "lambda:InvokeFunction", Function: "f"}, err: apiErr("InvalidRequestContentException", "Could not parse request body into json"),
			code:    "InvalidRequestContentException",
			message: "Lambda could not read the payload for f as JSON (InvalidRequestContentException): Could not parse request body into json"},
		{name: "lambda service", info: aws.CallInfo{API: "lambda:InvokeFunction", Function: "f"}, err: apiErr("ServiceException", "boom"),
			code: "ServiceException", message: "AWS had an internal error (ServiceException); try again shortly."},
		{name: "lambda denied", info: aws.CallInfo{API: "lambda:InvokeFunction", Function: "f"}, err: apiErr("AccessDeniedException", "User: arn:aws:sts::1:assumed-role/bot is not authorized"),
			code:    "AccessDeniedException",
			message: "The bot's AWS role is not allowed to call lambda:InvokeFunction (AccessDeniedException). Ask an admin to check the IAM policy."},
		{name: "lambda invoke deadline", info: aws.CallInfo{API: "lambda:InvokeFunction", Function: "f"}, err: &smithy.OperationError{Err: context.DeadlineExceeded},
			code: "Timeout", message: "Lambda did not answer within 20s; f may still be running.", deadline: true},
		{name: "lambda list deadline", info: aws.CallInfo{API: "lambda:ListFunctions"}, err: &smithy.OperationError{Err: context.DeadlineExceeded},
			code: "Timeout", message: "Lambda did not answer within 20s.", deadline: true},
		{name: "other", info: launch, err: errors.New("weird"),
			code: "AWSError", message: "Something went wrong calling AWS (ec2:RunInstances); details are in the bot's log."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := aws.MapError(tt.info, 20*time.Second, tt.err)
			var ce *computebot.Error
			if !errors.As(err, &ce) {
				t.Fatalf("got %T %v, want *computebot.Error", err, err)
			}
			if ce.Code != tt.code {
				t.Errorf("Code = %q, want %q", ce.Code, tt.code)
			}
			if tt.contains {
				if !strings.Contains(ce.Message, tt.message) {
					t.Errorf("Message = %q, want it to contain %q", ce.Message, tt.message)
				}
			} else if ce.Message != tt.message {
				t.Errorf("Message = %q\n want %q", ce.Message, tt.message)
			}
			if got := errors.Is(err, computebot.ErrNotFound); got != tt.notFound {
				t.Errorf("errors.Is(ErrNotFound) = %v, want %v", got, tt.notFound)
			}
			if got := errors.Is(err, context.DeadlineExceeded); got != tt.deadline {
				t.Errorf("errors.Is(DeadlineExceeded) = %v, want %v", got, tt.deadline)
			}
			if !errors.Is(err, tt.err) {
				t.Errorf("the original error is not in the chain")
			}
			if strings.Contains(ce.Message, "AKIA") || strings.Contains(ce.Message, "arn:aws") || strings.Contains(ce.Message, "Encoded") {
				t.Errorf("Message leaks AWS detail: %q", ce.Message)
			}
		})
	}
}

func TestMapErrorKeepsOurErrors(t *testing.T) {
	ours := &computebot.Error{Code: "X", Message: "m"}
	if got := aws.MapError(aws.CallInfo{}, time.Second, ours); got != error(ours) {
		t.Errorf("got %v, want the same *computebot.Error", got)
	}
	if aws.MapError(aws.CallInfo{}, time.Second, nil) != nil {
		t.Error("nil error mapped to non-nil")
	}
}

func TestTimeoutWithoutKnownBudget(t *testing.T) {
	err := aws.MapError(aws.CallInfo{API: "lambda:InvokeFunction", Function: "f"}, 0, context.DeadlineExceeded)
	if got := computebot.UserMessage(err); got != "Lambda did not answer in time; f may still be running." {
		t.Errorf("message = %q", got)
	}
}

func TestRoundBudget(t *testing.T) {
	for d, want := range map[time.Duration]time.Duration{
		199*time.Millisecond + 990*time.Microsecond:            200 * time.Millisecond,
		59*time.Second + 999*time.Millisecond:                  time.Minute,
		4*time.Second + 980*time.Millisecond:                   5 * time.Second,
		1500 * time.Millisecond:                                1500 * time.Millisecond,
		300 * time.Microsecond:                                 time.Millisecond,
		-time.Second:                                           0,
		14*time.Minute + 59*time.Second + 600*time.Millisecond: 15 * time.Minute,
	} {
		if got := aws.RoundBudget(d); got != want {
			t.Errorf("RoundBudget(%v) = %v, want %v", d, got, want)
		}
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		20 * time.Second:        "20s",
		1500 * time.Millisecond: "1.5s",
		2 * time.Minute:         "2m",
		90 * time.Second:        "1m30s",
		time.Hour:               "1h",
	} {
		if got := aws.FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

// TestTransient: the retry class lives with the error table, so the
// workflows never keep their own list of codes worth another attempt.
func TestTransient(t *testing.T) {
	launch := aws.CallInfo{API: "ec2:RunInstances", Type: "t2.micro"}
	cases := []struct {
		err  error
		want bool
	}{
		{apiErr("RequestLimitExceeded", "slow down"), true},
		{apiErr("ThrottlingException", "Rate exceeded"), true},
		{apiErr("InternalError", "oops"), true},
		{apiErr("ServiceUnavailable", "later"), true},
		{context.DeadlineExceeded, true},
		{&smithyhttp.RequestSendError{Err: errors.New("connection refused")}, true},
		{apiErr("InsufficientInstanceCapacity", "none"), false},
		{apiErr("InvalidAMIID.NotFound", "gone"), false},
		{apiErr("UnauthorizedOperation", "no"), false},
		{apiErr("IdempotentParameterMismatch", "differs"), false},
		{context.Canceled, false},
	}
	for _, tc := range cases {
		err := aws.MapError(launch, time.Second, tc.err)
		if got := computebot.Transient(err); got != tc.want {
			t.Errorf("Transient(%v) = %v, want %v", err, got, tc.want)
		}
	}
}
