package dynamostore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// The DynamoDB calls, each bounded by the call timeout (the SDK's retries
// of throttled or failed attempts included).

// conditionNames are the placeholders conditions may use; DynamoDB
// refuses names an expression does not use, so each call passes only its
// own. "data" is a reserved word, hence placeholders for every attribute.
var conditionNames = map[string]string{"#v": attrVersion, "#d": attrData, "#e": AttrExpires, "#c": attrCreated}

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
		s.onCall("GetItem", 1, err)
		return nil, wrap(err)
	}
	s.onCall("GetItem", readUnits(itemSize(out.Item)), nil)
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
	s.onCall("PutItem", writeUnits(itemSize(item)), err)
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
	s.onCall("DeleteItem", 1, err) // the size of what it deleted, which is small here
	return wrap(err)
}

// query runs a strongly consistent Query on the table, page after page,
// calling fn with each item in sort key order.
func (s *Store) query(ctx context.Context, in *dynamodb.QueryInput, fn func(map[string]types.AttributeValue) error) error {
	in.TableName, in.ConsistentRead = &s.table, awssdk.Bool(true)
	return s.pages(ctx, "Query", func(ctx context.Context, start map[string]types.AttributeValue) (page, error) {
		in.ExclusiveStartKey = start
		out, err := s.api.Query(ctx, in)
		if err != nil {
			return page{}, err
		}
		return page{out.Items, out.LastEvaluatedKey}, nil
	}, fn)
}

// scanPrefix scans the whole table (consistent) for the items whose pk
// starts with prefix: for tools and tests, never on the bot's paths.
func (s *Store) scanPrefix(ctx context.Context, prefix string, fn func(map[string]types.AttributeValue) error) error {
	in := &dynamodb.ScanInput{
		TableName: &s.table, ConsistentRead: awssdk.Bool(true),
		FilterExpression:          awssdk.String("begins_with(pk, :prefix)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":prefix": str(prefix)},
	}
	return s.pages(ctx, "Scan", func(ctx context.Context, start map[string]types.AttributeValue) (page, error) {
		in.ExclusiveStartKey = start
		out, err := s.api.Scan(ctx, in)
		if err != nil {
			return page{}, err
		}
		return page{out.Items, out.LastEvaluatedKey}, nil
	}, fn)
}

// page is one answer of a paginated read.
type page struct {
	items []map[string]types.AttributeValue
	last  map[string]types.AttributeValue // LastEvaluatedKey; empty on the last page
}

// pages calls read page after page, each under the call timeout, and fn
// with every item.
func (s *Store) pages(ctx context.Context, op string, read func(context.Context, map[string]types.AttributeValue) (page, error),
	fn func(map[string]types.AttributeValue) error) error {
	var start map[string]types.AttributeValue
	for {
		cctx, cancel := s.timeout(ctx)
		p, err := read(cctx, start)
		cancel()
		if err != nil {
			s.onCall(op, 1, err)
			return wrap(err)
		}
		s.onCall(op, readUnits(itemsSize(p.items)), nil)
		for _, item := range p.items {
			if err := fn(item); err != nil {
				return err
			}
		}
		if len(p.last) == 0 {
			return nil
		}
		start = p.last
	}
}

// batchGet reads up to 100 items, strongly consistent, asking again for
// the keys DynamoDB left unprocessed (it does under load). Missing items
// are skipped.
func (s *Store) batchGet(ctx context.Context, keys []map[string]types.AttributeValue, fn func(map[string]types.AttributeValue) error) error {
	req := map[string]types.KeysAndAttributes{s.table: {Keys: keys, ConsistentRead: awssdk.Bool(true)}}
	for round := 0; len(req) > 0 && len(req[s.table].Keys) > 0; round++ {
		if round >= maxBatchRounds {
			return fmt.Errorf("dynamodb: BatchGetItem: %d keys still unprocessed after %d rounds (throttled)", len(req[s.table].Keys), round)
		}
		if round > 0 {
			// Unprocessed keys mean DynamoDB is throttling: back off
			// (AWS's advice) before asking for them again.
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(min(time.Duration(round)*50*time.Millisecond, time.Second)):
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		cctx, cancel := s.timeout(ctx)
		out, err := s.api.BatchGetItem(cctx, &dynamodb.BatchGetItemInput{RequestItems: req})
		cancel()
		if err != nil {
			s.onCall("BatchGetItem", 1, err)
			return wrap(err)
		}
		units := 0.0
		for _, item := range out.Responses[s.table] {
			units += readUnits(itemSize(item)) // each item rounds up on its own
		}
		s.onCall("BatchGetItem", max(units, 1), nil)
		for _, item := range out.Responses[s.table] {
			if err := fn(item); err != nil {
				return err
			}
		}
		req = out.UnprocessedKeys
		if ka, ok := req[s.table]; ok {
			ka.ConsistentRead = awssdk.Bool(true) // as asked, whatever came back
			req = map[string]types.KeysAndAttributes{s.table: ka}
		}
	}
	return nil
}

// maxBatchRounds bounds the retries of unprocessed keys (about 10 s of
// backing off).
const maxBatchRounds = 20

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

// itemSize is an item's size as DynamoDB counts it: attribute names plus
// values (a number's digits take about half a byte each).
func itemSize(item map[string]types.AttributeValue) int {
	n := 0
	for name, v := range item {
		n += len(name)
		switch v := v.(type) {
		case *types.AttributeValueMemberS:
			n += len(v.Value)
		case *types.AttributeValueMemberN:
			n += len(v.Value)/2 + 1
		default:
			n++
		}
	}
	return n
}

func itemsSize(items []map[string]types.AttributeValue) int {
	n := 0
	for _, it := range items {
		n += itemSize(it)
	}
	return n
}

// readUnits: a strongly consistent read costs one unit per 4 KB, at least
// one; writeUnits: one per 1 KB, at least one.
func readUnits(size int) float64  { return float64(max(1, (size+4095)/4096)) }
func writeUnits(size int) float64 { return float64(max(1, (size+1023)/1024)) }
