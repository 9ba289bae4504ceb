package dynamostore

import (
	"context"
	"errors"
	"fmt"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// CheckAPI is what `computebot check` calls to verify the table: the
// store's calls and two descriptions.
type CheckAPI interface {
	API
	DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, opts ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
	DescribeTimeToLive(ctx context.Context, in *dynamodb.DescribeTimeToLiveInput, opts ...func(*dynamodb.Options)) (*dynamodb.DescribeTimeToLiveOutput, error)
}

// Check verifies what the bot needs of its table, one finding per line:
// it exists and is active, its keys are pk and sk (strings), TTL is on
// expires_at, and the bot may write: a conditional PutItem and DeleteItem
// whose condition can never hold prove the permission without changing a
// thing (ConditionalCheckFailedException means allowed, AccessDenied
// means not); a GetItem, Query and BatchGetItem of nothing prove the
// reads. (Scan is for computebot audit only, and not probed.)
func Check(ctx context.Context, api CheckAPI, table string) []error {
	var problems []error
	out, err := api.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: &table})
	if err != nil {
		return []error{fmt.Errorf("describe table %s: %w", table, err)}
	}
	t := out.Table
	if t.TableStatus != types.TableStatusActive {
		problems = append(problems, fmt.Errorf("table %s is %s, not ACTIVE", table, t.TableStatus))
	}
	keys := map[string]types.KeyType{}
	for _, k := range t.KeySchema {
		keys[deref(k.AttributeName)] = k.KeyType
	}
	kinds := map[string]types.ScalarAttributeType{}
	for _, a := range t.AttributeDefinitions {
		kinds[deref(a.AttributeName)] = a.AttributeType
	}
	if len(keys) != 2 || keys[attrPK] != types.KeyTypeHash || keys[attrSK] != types.KeyTypeRange ||
		kinds[attrPK] != types.ScalarAttributeTypeS || kinds[attrSK] != types.ScalarAttributeTypeS {
		problems = append(problems, fmt.Errorf("table %s: keys must be pk (HASH, S) and sk (RANGE, S); run computebot store init on a new table", table))
	}
	ttl, err := api.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: &table})
	switch {
	case err != nil:
		problems = append(problems, fmt.Errorf("describe time to live of %s: %w", table, err))
	case ttl.TimeToLiveDescription == nil || deref(ttl.TimeToLiveDescription.AttributeName) != AttrExpires ||
		(ttl.TimeToLiveDescription.TimeToLiveStatus != types.TimeToLiveStatusEnabled &&
			ttl.TimeToLiveDescription.TimeToLiveStatus != types.TimeToLiveStatusEnabling):
		problems = append(problems, fmt.Errorf("table %s: time to live is not enabled on %s (done intents would never be deleted); run computebot store init", table, AttrExpires))
	}
	s, err := New(api, Options{Table: table})
	if err != nil {
		return append(problems, err)
	}
	never := "attribute_exists(pk) AND attribute_not_exists(pk)"
	probe := map[string]types.AttributeValue{attrPK: str("check"), attrSK: str("permissions")}
	if _, err := s.put(ctx, probe, never, nil); !errors.Is(err, errCondition) {
		problems = append(problems, fmt.Errorf("table %s: a conditional PutItem did not get as far as its condition: %w", table, err))
	}
	if err := s.delete(ctx, probe, never, nil); !errors.Is(err, errCondition) {
		problems = append(problems, fmt.Errorf("table %s: a conditional DeleteItem did not get as far as its condition: %w", table, err))
	}
	if _, err := s.get(ctx, "meta", "schema"); err != nil {
		problems = append(problems, fmt.Errorf("table %s: GetItem: %w", table, err))
	}
	// The listings (resume, adoption, the expiry sweep, quota counts).
	if err := s.query(ctx, &dynamodb.QueryInput{
		KeyConditionExpression:    awssdk.String("pk = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str("check")},
	}, func(map[string]types.AttributeValue) error { return nil }); err != nil {
		problems = append(problems, fmt.Errorf("table %s: Query: %w", table, err))
	}
	if err := s.batchGet(ctx, []map[string]types.AttributeValue{probe}, func(map[string]types.AttributeValue) error { return nil }); err != nil {
		problems = append(problems, fmt.Errorf("table %s: BatchGetItem: %w", table, err))
	}
	return problems
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
