package dynamostore

import (
	"context"
	"errors"
	"fmt"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// AdminAPI is what `computebot store init` needs beyond the store's own
// calls: an admin's one-off, not the bot's runtime role (see
// deploy/iam-policy-store-init.json).
type AdminAPI interface {
	DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, opts ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
	CreateTable(ctx context.Context, in *dynamodb.CreateTableInput, opts ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error)
	DescribeTimeToLive(ctx context.Context, in *dynamodb.DescribeTimeToLiveInput, opts ...func(*dynamodb.Options)) (*dynamodb.DescribeTimeToLiveOutput, error)
	UpdateTimeToLive(ctx context.Context, in *dynamodb.UpdateTimeToLiveInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateTimeToLiveOutput, error)
}

// InitResult says what Init did.
type InitResult struct {
	CreatedTable bool
	EnabledTTL   bool
}

// Init creates the table (PAY_PER_REQUEST, keys pk and sk) when it is
// missing, waits for it to be active, and enables TTL on expires_at when
// it is not: harmless when both exist. wait bounds the wait for the table.
func Init(ctx context.Context, api AdminAPI, table string, wait time.Duration) (InitResult, error) {
	var res InitResult
	_, err := api.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: &table})
	var notFound *types.ResourceNotFoundException
	switch {
	case errors.As(err, &notFound):
		_, err = api.CreateTable(ctx, &dynamodb.CreateTableInput{
			TableName:   &table,
			BillingMode: types.BillingModePayPerRequest,
			AttributeDefinitions: []types.AttributeDefinition{
				{AttributeName: awssdk.String(attrPK), AttributeType: types.ScalarAttributeTypeS},
				{AttributeName: awssdk.String(attrSK), AttributeType: types.ScalarAttributeTypeS},
			},
			KeySchema: []types.KeySchemaElement{
				{AttributeName: awssdk.String(attrPK), KeyType: types.KeyTypeHash},
				{AttributeName: awssdk.String(attrSK), KeyType: types.KeyTypeRange},
			},
		})
		var inUse *types.ResourceInUseException
		if err != nil && !errors.As(err, &inUse) { // inUse: created meanwhile by someone else
			return res, fmt.Errorf("create table %s: %w", table, err)
		}
		res.CreatedTable = err == nil
	case err != nil:
		return res, fmt.Errorf("describe table %s: %w", table, err)
	}
	if err := waitActive(ctx, api, table, wait); err != nil {
		return res, err
	}
	ttl, err := api.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: &table})
	if err != nil {
		return res, fmt.Errorf("describe time to live of %s: %w", table, err)
	}
	if d := ttl.TimeToLiveDescription; d != nil && d.AttributeName != nil && *d.AttributeName == AttrExpires &&
		(d.TimeToLiveStatus == types.TimeToLiveStatusEnabled || d.TimeToLiveStatus == types.TimeToLiveStatusEnabling) {
		return res, nil
	}
	_, err = api.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{TableName: &table,
		TimeToLiveSpecification: &types.TimeToLiveSpecification{AttributeName: awssdk.String(AttrExpires), Enabled: awssdk.Bool(true)}})
	if err != nil {
		return res, fmt.Errorf("enable time to live on %s.%s: %w", table, AttrExpires, err)
	}
	res.EnabledTTL = true
	return res, nil
}

func waitActive(ctx context.Context, api AdminAPI, table string, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		out, err := api.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: &table})
		if err != nil {
			return fmt.Errorf("describe table %s: %w", table, err)
		}
		if out.Table != nil && out.Table.TableStatus == types.TableStatusActive {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("table %s is not active after %s (status %s)", table, wait, out.Table.TableStatus)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
