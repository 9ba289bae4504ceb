package dynamostore

import (
	"context"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/computebot/computebot"
)

// Test hooks for the external tests (which may import dynamotest, which
// imports this package).

// RequestMarkers lists the open#request markers.
func (s *Store) RequestMarkers(ctx context.Context) (map[string]bool, error) {
	out := map[string]bool{}
	err := s.query(ctx, &dynamodb.QueryInput{KeyConditionExpression: awssdk.String("pk = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str("open#request")}},
		func(item map[string]types.AttributeValue) error { out[stringOf(item[attrSK])] = true; return nil })
	return out, err
}

// PutRequestBehindMarkers writes r's item as it is, its marker untouched
// (a crash between the two writes).
func (s *Store) PutRequestBehindMarkers(ctx context.Context, r *computebot.Request) error {
	item, err := requests.item(r)
	if err != nil {
		return err
	}
	_, err = s.put(ctx, item, "", nil)
	return err
}

// MarkRequest writes an open marker for id, as of at.
func (s *Store) MarkRequest(ctx context.Context, id string, at time.Time) error {
	m := requests.marker(id)
	m[attrCreated] = num(at.UnixMilli())
	_, err := s.put(ctx, m, "", nil)
	return err
}
