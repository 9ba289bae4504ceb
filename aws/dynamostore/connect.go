package dynamostore

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/computebot/computebot/aws"
)

// defaultRegion is the region when neither the config nor the SDK's chain
// names one (as package aws does).
const defaultRegion = "us-east-1"

// Client returns a DynamoDB client from the SDK's default chain (the
// environment, shared config, the instance or pod role;
// AWS_ENDPOINT_URL_DYNAMODB or AWS_ENDPOINT_URL override the endpoint).
// region, when set, is the config's aws.region.
func Client(ctx context.Context, region string) (*dynamodb.Client, error) {
	opts := []func(*config.LoadOptions) error{config.WithLogger(aws.SDKLogger(slog.Default()))}
	if region != "" {
		opts = append(opts, config.WithRegion(region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("dynamodb: load AWS config: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = defaultRegion
	}
	return dynamodb.NewFromConfig(cfg), nil
}

// Connect opens the store on table with a client from the default chain.
func Connect(ctx context.Context, region string, opts Options) (*Store, error) {
	c, err := Client(ctx, region)
	if err != nil {
		return nil, err
	}
	return Open(ctx, c, opts)
}

// InitTable is Init with a client from the default chain.
func InitTable(ctx context.Context, region, table string) (InitResult, error) {
	c, err := Client(ctx, region)
	if err != nil {
		return InitResult{}, err
	}
	return Init(ctx, c, table, 5*time.Minute)
}

// CheckTable is Check with a client from the default chain.
func CheckTable(ctx context.Context, region, table string) []error {
	c, err := Client(ctx, region)
	if err != nil {
		return []error{err}
	}
	return Check(ctx, c, table)
}
