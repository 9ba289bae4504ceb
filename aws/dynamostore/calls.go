package dynamostore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// The DynamoDB calls, each bounded by the call timeout (the SDK's retries
// of throttled or failed attempts included).

// conditionNames are the placeholders conditions may use; DynamoDB
// refuses names an expression does not use, so each call passes only its
// own. "data" is a reserved word, hence placeholders for every attribute.
var conditionNames = map[string]string{"#v": attrVersion, "#d": attrData, "#e": AttrExpires}

func namesIn(expr string) map[string]string {
	var names map[string]string
	for ph, name := range conditionNames {
		if strings.Contains(expr, ph) {
			if names == nil {
				names = map[string]string{}
			}
			names[ph] = name
		}
	}
	return names
}

func (s *Store) timeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.callTimeout)
}

// get reads one item, strongly consistent; nil when there is none.
func (s *Store) get(ctx context.Context, pk, sk string) (map[string]types.AttributeValue, error) {
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	out, err := s.api.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: &s.table, ConsistentRead: awssdk.Bool(true),
		Key: map[string]types.AttributeValue{attrPK: str(pk), attrSK: str(sk)},
	})
	if err != nil {
		return nil, wrap(err)
	}
	if len(out.Item) == 0 {
		return nil, nil
	}
	return out.Item, nil
}

// put writes an item, under cond when it is not "" (errCondition when the
// stored item does not meet it).
func (s *Store) put(ctx context.Context, item map[string]types.AttributeValue, cond string, values map[string]types.AttributeValue) (*dynamodb.PutItemOutput, error) {
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	in := &dynamodb.PutItemInput{TableName: &s.table, Item: item}
	if cond != "" {
		in.ConditionExpression = &cond
		in.ExpressionAttributeNames = namesIn(cond)
		in.ExpressionAttributeValues = values
	}
	out, err := s.api.PutItem(ctx, in)
	return out, wrap(err)
}

// delete removes an item, under cond when it is not "".
func (s *Store) delete(ctx context.Context, key map[string]types.AttributeValue, cond string, values map[string]types.AttributeValue) error {
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	in := &dynamodb.DeleteItemInput{TableName: &s.table, Key: map[string]types.AttributeValue{attrPK: key[attrPK], attrSK: key[attrSK]}}
	if cond != "" {
		in.ConditionExpression = &cond
		in.ExpressionAttributeNames = namesIn(cond)
		in.ExpressionAttributeValues = values
	}
	_, err := s.api.DeleteItem(ctx, in)
	return wrap(err)
}

// query runs a strongly consistent Query on the table, page after page,
// calling fn with each item in sort key order.
func (s *Store) query(ctx context.Context, in *dynamodb.QueryInput, fn func(map[string]types.AttributeValue) error) error {
	in.TableName, in.ConsistentRead = &s.table, awssdk.Bool(true)
	for {
		cctx, cancel := s.timeout(ctx)
		out, err := s.api.Query(cctx, in)
		cancel()
		if err != nil {
			return wrap(err)
		}
		for _, item := range out.Items {
			if err := fn(item); err != nil {
				return err
			}
		}
		if len(out.LastEvaluatedKey) == 0 {
			return nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}

// scanPrefix scans the whole table (consistent) for the items whose pk
// starts with prefix: for tools and tests, never on the bot's paths.
func (s *Store) scanPrefix(ctx context.Context, prefix string, fn func(map[string]types.AttributeValue) error) error {
	in := &dynamodb.ScanInput{
		TableName: &s.table, ConsistentRead: awssdk.Bool(true),
		FilterExpression:          awssdk.String("begins_with(pk, :prefix)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":prefix": str(prefix)},
	}
	for {
		cctx, cancel := s.timeout(ctx)
		out, err := s.api.Scan(cctx, in)
		cancel()
		if err != nil {
			return wrap(err)
		}
		for _, item := range out.Items {
			if err := fn(item); err != nil {
				return err
			}
		}
		if len(out.LastEvaluatedKey) == 0 {
			return nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}

// batchGet reads up to 100 items, strongly consistent, asking again for
// the keys DynamoDB left unprocessed (it does under load). Missing items
// are skipped.
func (s *Store) batchGet(ctx context.Context, keys []map[string]types.AttributeValue, fn func(map[string]types.AttributeValue) error) error {
	req := map[string]types.KeysAndAttributes{s.table: {Keys: keys, ConsistentRead: awssdk.Bool(true)}}
	for len(req) > 0 && len(req[s.table].Keys) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		cctx, cancel := s.timeout(ctx)
		out, err := s.api.BatchGetItem(cctx, &dynamodb.BatchGetItemInput{RequestItems: req})
		cancel()
		if err != nil {
			return wrap(err)
		}
		for _, item := range out.Responses[s.table] {
			if err := fn(item); err != nil {
				return err
			}
		}
		req = out.UnprocessedKeys
	}
	return nil
}

// wrap turns a failed condition into errCondition and names the rest.
func wrap(err error) error {
	if err == nil {
		return nil
	}
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return errCondition
	}
	return fmt.Errorf("dynamodb: %w", err)
}
