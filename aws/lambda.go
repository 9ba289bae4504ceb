package aws

import (
	"context"
	"encoding/base64"
	"strings"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/computebot/computebot"
)

// IAM actions of the Lambda calls, as error messages name them.
const (
	apiListFunctions = "lambda:ListFunctions"
	apiGetFunction   = "lambda:GetFunction"
	apiInvoke        = "lambda:InvokeFunction"
)

// listFunctionsPageSize is MaxItems per ListFunctions page (Lambda's default
// is 50, its largest 10,000).
const listFunctionsPageSize = 50

// lambdaTimeLayouts are the forms of FunctionConfiguration.LastModified:
// Lambda sends "2024-01-01T00:00:00.000+0000", which is not RFC 3339.
var lambdaTimeLayouts = []string{
	"2006-01-02T15:04:05.000-0700",
	"2006-01-02T15:04:05-0700",
	time.RFC3339Nano,
}

// ListFunctions lists every Lambda function of the region ($LATEST of
// each), across all pages. Each page is one call bounded by CallTimeout.
func (c *Client) ListFunctions(ctx context.Context) ([]computebot.Function, error) {
	p := lambda.NewListFunctionsPaginator(c.lambda, &lambda.ListFunctionsInput{
		MaxItems: awssdk.Int32(listFunctionsPageSize),
	})
	info := callInfo{API: apiListFunctions}
	retryOpt := c.lambdaRetry(info.API)
	var list []computebot.Function
	for p.HasMorePages() {
		page, err := call(ctx, c, info, func(ctx context.Context) (*lambda.ListFunctionsOutput, error) {
			return p.NextPage(ctx, retryOpt)
		})
		if err != nil {
			return nil, err
		}
		for _, f := range page.Functions {
			list = append(list, convertFunction(f))
		}
	}
	return list, nil
}

// GetFunction describes one function (name, ARN or name:qualifier). An
// unknown function gives an error wrapping computebot.ErrNotFound, code
// ResourceNotFoundException.
func (c *Client) GetFunction(ctx context.Context, name string) (computebot.Function, error) {
	info := callInfo{API: apiGetFunction, Function: name}
	out, err := call(ctx, c, info, func(ctx context.Context) (*lambda.GetFunctionOutput, error) {
		return c.lambda.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: awssdk.String(name)}, c.lambdaRetry(info.API))
	})
	if err != nil {
		return computebot.Function{}, err
	}
	if out.Configuration == nil {
		return computebot.Function{}, notFoundError(info, "ResourceNotFoundException")
	}
	return convertFunction(*out.Configuration), nil
}

// Invoke runs a function. Synchronous (the default) uses InvocationType
// RequestResponse with LogType Tail: the result carries status 200, the
// function's response, FunctionError ("Unhandled" when the function
// failed; that is not an error of Invoke) and the decoded log tail. Async
// uses InvocationType Event: Lambda queues the event and answers 202 with
// the request ID at once.
//
// Unlike every other call, Invoke is NOT bounded by Options.CallTimeout: a
// function may legitimately run for up to its own timeout (15 minutes at
// most). It waits exactly as long as ctx allows, so the caller passes a ctx
// with its deadline (the bot's lambda.timeout). When that deadline passes
// the error has code Timeout, wraps context.DeadlineExceeded and says how
// long the bot waited; the function may still be running in Lambda.
func (c *Client) Invoke(ctx context.Context, in computebot.Invocation) (computebot.InvocationResult, error) {
	info := callInfo{API: apiInvoke, Function: in.Function}
	input := &lambda.InvokeInput{
		FunctionName:   awssdk.String(in.Function),
		InvocationType: types.InvocationTypeRequestResponse,
		LogType:        types.LogTypeTail,
	}
	if in.Async {
		input.InvocationType = types.InvocationTypeEvent
		input.LogType = "" // Lambda returns no log for an event
	}
	if len(in.Payload) > 0 {
		input.Payload = in.Payload
	}
	out, err := callWithin(ctx, c, info, 0, func(ctx context.Context) (*lambda.InvokeOutput, error) {
		// One attempt (retryOnce): a retried 5xx or dropped connection could
		// run the function twice, and invocations are not idempotent.
		return c.lambda.Invoke(ctx, input, c.lambdaRetry(info.API))
	})
	if err != nil {
		return computebot.InvocationResult{}, err
	}
	res := computebot.InvocationResult{
		StatusCode:      out.StatusCode,
		FunctionError:   awssdk.ToString(out.FunctionError),
		Payload:         out.Payload,
		LogTail:         decodeLogResult(awssdk.ToString(out.LogResult)),
		ExecutedVersion: awssdk.ToString(out.ExecutedVersion),
	}
	res.RequestID, _ = awsmiddleware.GetRequestIDMetadata(out.ResultMetadata)
	return res, nil
}

// decodeLogResult decodes X-Amz-Log-Result (base64 of the last 4 KB of the
// log). Text that is not base64 is kept as it came.
func decodeLogResult(s string) string {
	if s == "" {
		return ""
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return s
	}
	return string(b)
}

func convertFunction(f types.FunctionConfiguration) computebot.Function {
	return computebot.Function{
		Name:         awssdk.ToString(f.FunctionName),
		Runtime:      string(f.Runtime),
		MemoryMB:     awssdk.ToInt32(f.MemorySize),
		LastModified: parseLambdaTime(awssdk.ToString(f.LastModified)),
		Description:  awssdk.ToString(f.Description),
	}
}

// parseLambdaTime parses LastModified; the zero time when absent or odd.
func parseLambdaTime(s string) time.Time {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}
	}
	for _, layout := range lambdaTimeLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC()
		}
	}
	return time.Time{}
}
